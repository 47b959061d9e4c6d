// Models page: every version of a model with what its card says (metrics, curves, confusion matrix,
// formats, pruning), and promote / rollback through the admin API (CSRF token sent from the meta tag).
import { t } from "./i18n.js";
import { api, bindLogin, element, jsonHeaders, labelText, percent, table } from "./render.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let models = null;

const number = (value) => (typeof value === "number" ? (Number.isInteger(value) ? value.toLocaleString()
  : Math.abs(value) < 1e-3 && value !== 0 ? value.toExponential(2) : value.toFixed(4)) : String(value));
const isScalar = (value) => ["number", "string", "boolean"].includes(typeof value);

function showError(message) {
  $("models-error").textContent = message;
  $("models-error").classList.toggle("d-none", !message);
}

/** Numeric and text leaves of an object as [path, value] rows (arrays and big objects skipped). */
function leaves(object, prefix = "", depth = 0) {
  return Object.entries(object || {}).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isScalar(value)) return [[path, number(value)]];
    if (value && typeof value === "object" && !Array.isArray(value) && depth < 2 && !["confusion", "curves", "files"].includes(key)) {
      return leaves(value, path, depth + 1);
    }
    return [];
  });
}

/** A table of row objects: one column per key seen. */
function objectTable(rows) {
  const keys = [...new Set([...rows.flatMap((row) => Object.keys(row).filter((key) => isScalar(row[key])))])];
  return table([keys, ...rows.map((row) => keys.map((key) => (row[key] === undefined ? "—" : number(row[key]))))]);
}

function lineChart(title, series) {
  const width = 320;
  const height = 180;
  const pad = 28;
  const all = Object.values(series).flat();
  const low = Math.min(...all);
  const high = Math.max(...all);
  const longest = Math.max(...Object.values(series).map((values) => values.length));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${Object.keys(series).join(", ")}`);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs).forEach(([name, value]) => node.setAttribute(name, value));
    if (text) node.textContent = text;
    svg.append(node);
  };
  add("line", { x1: pad, y1: height - pad, x2: width - 4, y2: height - pad, class: "axis" });
  add("line", { x1: pad, y1: 4, x2: pad, y2: height - pad, class: "axis" });
  add("text", { x: 2, y: 12 }, number(high));
  add("text", { x: 2, y: height - pad }, number(low));
  add("text", { x: width / 2, y: height - 6 }, t("models.epoch"));
  Object.entries(series).forEach(([name, values], index) => {
    const x = (i) => pad + (i / Math.max(longest - 1, 1)) * (width - pad - 8);
    const y = (v) => height - pad - ((v - low) / (high - low || 1)) * (height - pad - 8);
    add("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), class: `series-${index % 4}` });
    add("text", { x: width - 90, y: 14 + index * 12, class: `series-${index % 4}` }, name);
  });
  return element("figure", {}, element("figcaption", { className: "small", text: title }), svg);
}

function curves(card) {
  const stages = card.metrics?.curves || {};
  return Object.entries(stages).flatMap(([stage, history]) => {
    const numeric = Object.fromEntries(Object.entries(history || {}).filter(([, v]) => Array.isArray(v) && v.length && v.every((x) => typeof x === "number")));
    const groups = [["loss", (k) => k.includes("loss")], ["accuracy", (k) => k.includes("acc")]];
    return groups.map(([kind, match]) => [kind, Object.fromEntries(Object.entries(numeric).filter(([k]) => match(k)))])
      .filter(([, series]) => Object.keys(series).length)
      .map(([kind, series]) => lineChart(`${stage} — ${t(`models.curve_${kind}`)}`, series));
  });
}

function confusion(card) {
  const block = card.metrics?.test?.confusion || card.metrics?.crossval?.confusion;
  if (!block) return element("p", { className: "small text-body-secondary", text: t("models.none") });
  const { labels, matrix, files = {} } = block;
  const head = [t("models.true_predicted"), ...labels.map(labelText)];
  const rows = labels.map((truth, i) => [labelText(truth), ...labels.map((predicted, j) => {
    const names = files[truth]?.[predicted] || [];
    const button = element("button", {
      className: `btn btn-sm ${i === j ? "btn-success" : matrix[i][j] ? "btn-danger" : "btn-outline-secondary"}`,
      text: String(matrix[i][j]),
      attrs: { type: "button", "aria-label": t("models.cell", { truth: labelText(truth), predicted: labelText(predicted), n: matrix[i][j] }) },
    });
    button.disabled = !names.length;
    button.addEventListener("click", () => {
      $("confusion-files").replaceChildren(
        element("p", { className: "mb-1 fw-semibold", text: t("models.cell", { truth: labelText(truth), predicted: labelText(predicted), n: names.length }) }),
        element("ul", {}, ...names.map((name) => element("li", { text: name }))));
    });
    return button;
  })]);
  return table([head, ...rows], "table table-sm confusion w-auto");
}

// One row per exported format: size, and where `riim export` measured it, agreement with Keras,
// |Δp|, accuracy and latency per runtime setting (card.parity.report.formats).
function formats(card) {
  const report = card.parity?.report?.formats || {};
  const rows = Object.entries(card.files).filter(([fmt]) => report[fmt] || /onnx|tflite|tfjs|keras/.test(fmt))
    .map(([fmt, entry]) => {
      const row = report[fmt] || {};
      const latency = Object.entries(row.latency_ms || {}).map(([setting, p]) => `${setting}: ${p.p50.toFixed(1)} / ${p.p95.toFixed(1)}`);
      return [fmt, row.runtime || "—", `${(entry.bytes / 2 ** 20).toFixed(2)} MB`,
        row.top1_agreement === undefined ? "—" : percent(row.top1_agreement),
        row.max_abs_dp === undefined ? "—" : number(row.max_abs_dp),
        row.accuracy == null ? "—" : percent(row.accuracy), latency.join(" · ") || "—"];
    });
  const head = [t("models.format"), t("models.runtime"), t("models.size"), t("models.agreement"), t("models.max_dp"),
    t("models.accuracy"), t("models.latency")];
  return table([head, ...rows]);
}

function pruning(card) {
  const block = card.optimization?.pruning;
  const rows = Array.isArray(block) ? block : block?.rows;
  if (!rows?.length) return element("p", { className: "small text-body-secondary", text: t("models.none") });
  return element("div", {}, block.method ? element("p", { className: "small", text: block.method }) : "", objectTable(rows));
}

function showVersion(card) {
  const lang = document.documentElement.lang;
  $("detail-heading").textContent = `${card.name} ${card.version}`;
  $("detail-description").textContent = card.description?.[lang] || "";
  const metricRows = leaves(card.metrics);
  $("detail-metrics").replaceChildren(metricRows.length
    ? table([[t("models.metric"), t("models.value")], ...metricRows])
    : element("p", { className: "small text-body-secondary", text: t("models.none") }));
  $("detail-confusion").replaceChildren(confusion(card));
  $("confusion-files").replaceChildren();
  const charts = curves(card);
  $("detail-curves").replaceChildren(...(charts.length ? charts : [element("p", { className: "small text-body-secondary", text: t("models.none") })]));
  $("detail-formats").replaceChildren(formats(card));
  $("detail-pruning").replaceChildren(pruning(card));
  $("version-detail").classList.remove("d-none");
}

async function adminCall(url, body) {
  try {
    await api(url, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(body) });
    showError("");
    await load($("model-name").value);
  } catch (error) {
    showError(error.message);
    if (error.status === 401) $("login-form").classList.remove("d-none");
  }
}

function accuracy(card) {
  const value = card.metrics?.test?.accuracy;
  return typeof value === "number" ? percent(value) : "—";
}

async function load(name) {
  models = await api(`/api/v1/models/${encodeURIComponent(name)}`);
  const head = [t("models.version"), t("models.created"), t("models.accuracy"), t("models.size"), t("models.actions")];
  const rows = models.versions.map((card) => {
    const current = card.version === models.current;
    const details = element("button", { className: "btn btn-sm btn-outline-primary me-1", text: t("models.details"), attrs: { type: "button" } });
    details.addEventListener("click", () => showVersion(card));
    const promote = element("button", { className: "btn btn-sm btn-outline-success", text: t("models.promote"),
      attrs: { type: "button", "data-version": card.version } });
    promote.disabled = current;
    promote.addEventListener("click", () => adminCall(`/api/v1/models/${encodeURIComponent(name)}/promote`, { version: card.version }));
    const version = element("span", {}, card.version, current ? element("span", { className: "badge text-bg-primary ms-2", text: t("models.current") }) : "");
    const bytes = Object.values(card.files).reduce((sum, entry) => sum + entry.bytes, 0);
    return [version, card.created.replace("T", " ").slice(0, 16), accuracy(card), `${(bytes / 2 ** 20).toFixed(1)} MB`, element("span", {}, details, promote)];
  });
  $("versions").replaceChildren(table([head, ...rows], "table table-sm align-middle"));
  $("rollback").disabled = models.history.length < 2;
  const current = models.versions.find((card) => card.version === models.current) || models.versions[0];
  if (current) showVersion(current);
  document.body.dataset.state = "done";
}

$("rollback").addEventListener("click", () => adminCall(`/api/v1/models/${encodeURIComponent($("model-name").value)}/rollback`, {}));
$("model-name").addEventListener("change", (event) => load(event.target.value).catch((error) => showError(error.message)));
bindLogin(showError);

try {
  const info = await api("/api/v1/model-info");
  $("model-name").replaceChildren(...info.models.map((model) => element("option", { text: model.name, attrs: { value: model.name } })));
  $("model-name").value = info.default_model;
  await load($("model-name").value);
} catch (error) {
  showError(error.message);
}
