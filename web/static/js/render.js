// Small DOM builders shared by the pages (no inline styles: sizes are set through the CSSOM), numbers in the
// page's language, and the navbar login of every page (templates/base.html + _login.html).
import { colourise } from "./contract.js";
import { t } from "./i18n.js";

/** The page's language (<html lang>), not the browser's locale: numbers follow the page. */
export const pageLanguage = document.documentElement.lang === "en" ? "en" : "es";
const LOCALE = pageLanguage === "en" ? "en-GB" : "es-ES";

/** A number in the page's language (Intl), e.g. 4.633.002 / 4,633,002; options as Intl.NumberFormat. */
export function formatNumber(value, options = {}) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value ?? "—");
  return new Intl.NumberFormat(LOCALE, { useGrouping: true, ...options }).format(value);
}

/** A label in the page language (catalogue key label.<name>), or the name itself. */
export function labelText(label) {
  const key = `label.${label}`;
  return t(key) === key ? label : t(key);
}

/** A catalogue string, or ``fallback`` when the catalogue has no such key. */
export function tOr(key, fallback, values = {}) {
  const text = t(key, values);
  return text === key ? fallback : text;
}

export const percent = (p, digits = 1) => formatNumber(p, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits });
export const ms = (value) => `${formatNumber(value, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} ms`;

export function element(tag, { className, text, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  Object.entries(attrs || {}).forEach(([name, value]) => node.setAttribute(name, value));
  node.append(...children);
  return node;
}

/** INPUT (type file) as a button saying TEXT in the page's language (the native input says "Choose File" in the
 * browser's): the input stays inside the button's label, hidden, where the keyboard and the page's script reach it. */
export function fileButton(input, text) {
  input.className = "visually-hidden";
  return element("label", { className: "btn btn-outline-secondary btn-sm file-button", text }, input);
}

/** A labelled, accessible probability bar. */
export function bar(name, probability, highlight = false) {
  const inner = element("div", { className: `progress-bar${highlight ? "" : " bg-secondary"}` });
  inner.style.width = `${probability * 100}%`;
  const outer = element("div", {
    className: "progress probability-bar",
    attrs: { role: "progressbar", "aria-label": labelText(name), "aria-valuenow": Math.round(probability * 100),
      "aria-valuemin": "0", "aria-valuemax": "100" },
  }, inner);
  return element("div", { className: "mb-2" }, element("div", { text: `${labelText(name)} — ${percent(probability)}` }), outer);
}

/** Badge text and colour for a decision; "unknown" is shown in its own colour, its reason on the next line. */
export function setBadge(badge, result) {
  badge.textContent = result.unknown ? labelText("unknown") : `${labelText(result.label)} · ${percent(result.confidence)}`;
  badge.title = result.unknown ? t("analyze.unknown_hint") : "";
  badge.dataset.label = result.label;
  badge.className = `badge result-label ${result.unknown ? "text-bg-warning" : "text-bg-success"}`;
}

/** A small "why?" disclosure: a summary word and the explanation below it. */
export function why(text, summary = t("explain.why")) {
  return element("details", { className: "why small" }, element("summary", { text: summary }), element("p", { className: "mb-1", text }));
}

/** A table from rows of cells; the first row is the header. */
export function table(rows, className = "table table-sm") {
  const [head, ...body] = rows;
  return element("table", { className },
    element("thead", {}, element("tr", {}, ...head.map((cell) => element("th", { text: cell, attrs: { scope: "col" } })))),
    element("tbody", {}, ...body.map((row) => element("tr", {}, ...row.map((cell) =>
      cell instanceof Node ? element("td", {}, cell) : element("td", { text: cell }))))));
}

/** A grid of 0..1 values in the server's colour map (contract.js) as a PNG data URL, smoothly enlarged to `size`. */
export function heatmapUrl(values, height, width, size) {
  const small = element("canvas");
  small.width = width;
  small.height = height;
  small.getContext("2d").putImageData(new ImageData(colourise(values), width, height), 0, 0);
  const big = element("canvas");
  big.width = size;
  big.height = size;
  const context = big.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(small, 0, 0, size, size);
  return big.toDataURL("image/png");
}

/** ImageData as a PNG data URL. */
export function imageDataUrl(imageData) {
  const canvas = document.createElement("canvas");
  canvas.width = imageData.width;
  canvas.height = imageData.height;
  canvas.getContext("2d").putImageData(imageData, 0, 0);
  return canvas.toDataURL("image/png");
}

/** Headers for a state-changing call: JSON plus the CSRF token from <meta name="csrf-token">. */
export function jsonHeaders() {
  const token = document.querySelector('meta[name="csrf-token"]')?.content;
  return { "Content-Type": "application/json", ...(token ? { "X-CSRFToken": token } : {}) };
}

/** JSON from the API in the page's language; a failure throws the API's message with its HTTP status. */
export async function api(url, options = {}) {
  const response = await fetch(`${url}${url.includes("?") ? "&" : "?"}lang=${document.documentElement.lang}`, options);
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body.error?.message || response.statusText), { status: response.status });
  return body;
}

// --- unread training alerts on the CNN lab's link of every page's navbar -----------------------------
export const ALERTS_SEEN_KEY = "riim.lab.alertsSeen";  // the time of the newest alert marked read on /lab

/** The newest training alerts (GET /api/v1/lab/alerts) and those not yet marked read in this browser. */
export async function labAlerts(limit = 30) {
  const { alerts } = await api(`/api/v1/lab/alerts?limit=${limit}`);
  const seen = localStorage.getItem(ALERTS_SEEN_KEY) || "";
  return { alerts, fresh: alerts.filter((alert) => alert.time > seen) };
}

/** A count on the navbar's lab link when there are unread alerts (a teacher sees a failed run from any page), and
 * on the menu button of a phone's collapsed navbar. */
export async function showUnreadAlerts() {
  const link = document.querySelector('[data-nav="lab.page"]');
  if (!link) return;
  let count = 0;
  try {
    count = (await labAlerts()).fresh.length;
  } catch { /* offline or no lab: no count */ }
  const text = t("nav.lab_alerts", { count: formatNumber(count) });
  const badge = (parent, className) => {
    const found = parent.querySelector(`.${className}`)
      || parent.appendChild(element("span", { className: `${className} badge rounded-pill text-bg-warning` }));
    found.classList.toggle("d-none", count === 0);
    found.title = text;
    return found;
  };
  badge(link, "nav-alerts").replaceChildren(element("span", { text: formatNumber(count), attrs: { "aria-hidden": "true" } }),
    element("span", { className: "visually-hidden", text }));
  const toggler = document.querySelector(".navbar-toggler");
  if (toggler) badge(toggler, "nav-alerts-dot").textContent = formatNumber(count);  // the button's label says "menu"
}

// --- login from the navbar of every page -----------------------------------------------------------
const loginHooks = { error: null, done: [] };
const byId = (id) => document.getElementById(id);

function showLoginError(message) {
  byId("login-error").textContent = message;
  byId("login-error").classList.toggle("d-none", !message);
}

/** Open the login form (navbar button, or a page action that needs an admin), saying why when given. */
export function openLogin(reason = "") {
  byId("login-form").classList.remove("d-none");
  byId("login-open").setAttribute("aria-expanded", "true");
  if (reason) byId("login-why").textContent = reason;
  byId("login-user").focus();
}

function closeLogin() {
  byId("login-form").classList.add("d-none");
  byId("login-open").setAttribute("aria-expanded", "false");
}

/** The navbar shows who is logged in (GET /api/v1/auth/me or the login answer). */
export function showUser(user) {
  byId("nav-user").textContent = user ? t("login.as", { user: user.username || user.name || "" }) : "";
  byId("nav-user").classList.toggle("d-none", !user);
  byId("login-open").classList.toggle("d-none", Boolean(user));
  byId("logout").classList.toggle("d-none", !user);
  document.body.dataset.admin = String(Boolean(user?.is_admin));
}

/** A page's hooks for the login of templates/_login.html: ``onError`` also gets the error message (the form
 * shows it anyway), ``onDone(user)`` runs after a successful login. */
export function bindLogin(onError, onDone = () => {}) {
  loginHooks.error = onError;
  loginHooks.done.push(onDone);
}

async function submitLogin(event) {
  event.preventDefault();
  try {
    const answer = await api("/api/v1/auth/login", { method: "POST", headers: jsonHeaders(), body: JSON.stringify({
      username: byId("login-user").value, password: byId("login-password").value }) });
    document.querySelector('meta[name="csrf-token"]').content = answer.csrf_token;
    byId("login-password").value = "";
    closeLogin();
    showLoginError("");
    loginHooks.error?.("");
    showUser(answer.user);
    document.dispatchEvent(new CustomEvent("riim:login", { detail: answer.user }));
    loginHooks.done.forEach((hook) => hook(answer.user));
  } catch (error) {
    showLoginError(error.message);
    loginHooks.error?.(error.message);
  }
}

async function logout() {
  try {
    const answer = await api("/api/v1/auth/logout", { method: "POST", headers: jsonHeaders(), body: "{}" });
    if (answer?.csrf_token) document.querySelector('meta[name="csrf-token"]').content = answer.csrf_token;
  } catch { /* already logged out */ }
  window.location.reload();
}

if (byId("login-form")) {
  byId("login-form").addEventListener("submit", submitLogin);
  byId("login-open").addEventListener("click", () => (byId("login-form").classList.contains("d-none") ? openLogin() : closeLogin()));
  byId("login-close").addEventListener("click", closeLogin);
  byId("logout").addEventListener("click", logout);
  byId("login-open").disabled = false;  // rendered disabled: no click is lost before this module has run
  fetch(`/api/v1/auth/me?lang=${pageLanguage}`).then((response) => response.json())
    .then((me) => showUser(me.user)).catch(() => { /* offline: nobody is logged in here */ });
}
showUnreadAlerts();
