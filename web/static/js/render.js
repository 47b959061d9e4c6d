// Small DOM builders shared by the pages (no inline styles: sizes are set through the CSSOM).
import { colourise } from "./contract.js";
import { t } from "./i18n.js";

/** A label in the page language (catalogue key label.<name>), or the name itself. */
export function labelText(label) {
  const key = `label.${label}`;
  return t(key) === key ? label : t(key);
}

export const percent = (p) => `${(p * 100).toFixed(1)} %`;
export const ms = (value) => `${value.toFixed(1)} ms`;

export function element(tag, { className, text, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  Object.entries(attrs || {}).forEach(([name, value]) => node.setAttribute(name, value));
  node.append(...children);
  return node;
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

/** Badge text and colour for a decision; "unknown" is shown in its own colour with the reason. */
export function setBadge(badge, result) {
  badge.textContent = result.unknown
    ? `${labelText("unknown")} (${t("analyze.unknown_hint")})`
    : `${labelText(result.label)} · ${percent(result.confidence)}`;
  badge.dataset.label = result.label;
  badge.className = `badge result-label ${result.unknown ? "text-bg-warning" : "text-bg-success"}`;
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

/** Wire the admin login form of templates/_login.html: log in, keep the session's new CSRF token. */
export function bindLogin(onError, onDone = () => {}) {
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await api("/api/v1/auth/login", { method: "POST", headers: jsonHeaders(), body: JSON.stringify({
        username: document.getElementById("login-user").value, password: document.getElementById("login-password").value }) });
      document.querySelector('meta[name="csrf-token"]').content = answer.csrf_token;
      form.classList.add("d-none");
      onError("");
      onDone(answer.user);
    } catch (error) {
      onError(error.message);
    }
  });
}
