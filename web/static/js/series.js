// Series page: pick a time-series model of the registry, train one (a background job with live curves),
// see its forecasts against the real values and the naive / seasonal-naive baselines, and flag anomalies
// with a threshold slider. Everything comes from /api/v1/dl (ONNX Runtime on the server); charts are the
// vendored Chart.js; every word comes from the catalogue.
import { t } from "./i18n.js";
import { api, bindLogin, element, formatNumber, jsonHeaders, openLogin, percent, tOr } from "./render.js";

const $ = (id) => document.getElementById(id);
const Chart = globalThis.Chart;
const charts = {};
let info = null;
let anomaly = null;  // {values, labels, dates, scores, calibrated}
let polling = null;

const number = (value, digits = 3) => (typeof value === "number" && Number.isFinite(value)
  ? formatNumber(value, { maximumFractionDigits: digits }) : "—");
const CLEAR_WIN = 0.95;  // model MAE ÷ baseline MAE below this counts as beating the baseline
const horizonOf = (window) => Math.max(1, Math.floor(0.3 * window + 0.5));

function showError(message) {
  $("series-error").textContent = message || "";
  $("series-error").classList.toggle("d-none", !message);
  if (message) $("series-error").scrollIntoView({ block: "nearest" });
}

// --- charts -------------------------------------------------------------------------------------------
const COLOURS = { actual: "#198754", model: "#0d6efd", naive: "#6c757d", seasonal_naive: "#fd7e14", loss: "#0d6efd",
  val_loss: "#fd7e14", flagged: "#dc3545", injected: "#ffc107", score: "#6f42c1" };

/** A line chart with its caption, in ``slot`` (an element id), replacing the chart that was there. */
function lineChart(slot, title, labels, datasets, axes = {}) {
  charts[slot]?.destroy();
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": title } });
  $(slot).replaceChildren(element("figure", { className: "chart-box series-chart mb-3" },
    element("figcaption", { className: "small fw-semibold", text: title }),
    element("div", { className: "chart-canvas" }, canvas)));
  if (!Chart) return;
  charts[slot] = new Chart(canvas, {
    type: "line",
    data: { labels, datasets: datasets.map((set) => ({ borderWidth: 2, pointRadius: 0, spanGaps: false, tension: 0,
      borderColor: COLOURS[set.key], backgroundColor: COLOURS[set.key], ...set })) },
    options: { animation: false, responsive: true, maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "top", labels: { boxWidth: 12 } } },
      scales: { x: { title: { display: Boolean(axes.x), text: axes.x }, ticks: { maxTicksLimit: window.innerWidth < 576 ? 4 : 8, maxRotation: 0 } },
        y: { title: { display: Boolean(axes.y), text: axes.y },
          ticks: { callback: (value) => formatNumber(value, { maximumSignificantDigits: 4 }) } } } },
  });
}

// --- models ---------------------------------------------------------------------------------------------
const modelTitle = (model) => `${tOr(`series.model_${model.name}`, model.name)} · ${model.current || "—"}`;
const dataName = (name) => tOr(`series.data_${name}`, name);

async function loadInfo(select = null) {
  info = await api("/api/v1/dl/model-info");
  const usable = info.models.filter((model) => model.current);
  $("series-model").replaceChildren(...usable.map((model) => element("option", { text: modelTitle(model), attrs: { value: model.name } })));
  $("no-models").classList.toggle("d-none", usable.length > 0);
  if (select && usable.some((model) => model.name === select)) $("series-model").value = select;
  if (usable.length) await show($("series-model").value);
  else ["forecast-section", "anomaly-section"].forEach((id) => $(id).classList.add("d-none"));
}

function summary(model) {
  const spec = model.series;
  const data = model.data.map((file) => t("series.data_file", { file: file.file, rows: formatNumber(file.rows), start: file.start, end: file.end })).join("; ");
  const text = spec.model === "autoencoder"
    ? t("series.summary_anomaly", { window: spec.window, target: spec.target, data })
    : t("series.summary_forecast", { window: spec.window, horizon: spec.horizon, target: spec.target, data });
  const training = t("series.summary_training", { epochs: model.training.epochs_run, seconds: number(model.training.seconds, 0),
    train: formatNumber(model.training.windows.train), validation: formatNumber(model.training.windows.validation), test: formatNumber(model.training.windows.test) });
  $("model-summary").replaceChildren(element("span", { text: `${text} ${training}` }), " ",
    element("span", { className: "text-body-secondary", text: t("series.summary_scaler", { mean: number(spec.scaler.mean), scale: number(spec.scaler.scale), rows: formatNumber(spec.scaler.rows) }) }));
}

async function show(name) {
  const model = info.models.find((entry) => entry.name === name);
  if (!model) return;
  summary(model);
  const isAnomaly = model.task === "time-series-anomaly";
  $("forecast-section").classList.toggle("d-none", isAnomaly);
  $("anomaly-section").classList.toggle("d-none", !isAnomaly);
  const evaluation = await api(`/api/v1/dl/evaluation?model=${encodeURIComponent(name)}&task=${model.task}`);
  if (isAnomaly) await showAnomalies(model, evaluation);
  else await showForecast(model, evaluation);
}

// --- forecasts ------------------------------------------------------------------------------------------
function metricsTable(heldout) {
  const names = ["model", "naive", "seasonal_naive"].filter((name) => heldout[name]);
  const head = ["", "MAE", "RMSE", "sMAPE", "MASE", t("series.direction"), t("series.vs_model")];
  const rows = names.map((name) => {
    const row = heldout[name];
    const ratio = name === "model" ? "—" : number(heldout.relative_mae[name]);
    return [t(`series.forecast_${name}`), number(row.mae), number(row.rmse), `${number(row.smape, 2)} %`, number(row.mase),
      row.directional_accuracy == null ? "—" : percent(row.directional_accuracy), ratio];
  });
  const table = element("table", { className: "table table-sm series-metrics" },
    element("thead", {}, element("tr", {}, ...head.map((text) => element("th", { text, attrs: { scope: "col" } })))),
    element("tbody", {}, ...rows.map((row, index) => element("tr", { className: index === 0 ? "table-primary" : "" },
      ...row.map((text, column) => element(column ? "td" : "th", { text, attrs: column ? {} : { scope: "row" } }))))));
  // "beats" only by a clear margin: a ratio of 0.99 against the naive forecast is a tie, not a win
  const best = names.filter((name) => name !== "model").every((name) => heldout.relative_mae[name] < CLEAR_WIN);
  const verdict = element("p", { className: `small fw-semibold ${best ? "text-success" : "text-warning-emphasis"}`,
    text: best ? t("series.beats_baselines") : t("series.not_better") });
  $("metrics").replaceChildren(verdict, table);
}

async function showForecast(model, evaluation) {
  metricsTable(model.heldout);
  const [series, plot] = Object.entries(evaluation.plots)[0];
  const labels = [], sets = { actual: [], model: [], naive: [], seasonal_naive: [] };
  plot.dates.forEach((dates, row) => {
    labels.push(...dates, "");
    Object.keys(sets).forEach((key) => sets[key].push(...(plot[key] ? plot[key][row] : dates.map(() => null)), null));
  });
  lineChart("heldout-chart", t("series.heldout_chart", { series: dataName(series), n: plot.dates.length, horizon: model.series.horizon }), labels,
    Object.entries(sets).filter(([key]) => plot[key]).map(([key, data]) => ({ key, label: t(`series.forecast_${key}`), data,
      borderDash: key === "actual" || key === "model" ? [] : [5, 4] })), { x: t("series.date"), y: model.series.target });
  const curves = evaluation.history || {};
  lineChart("curves-chart", t("series.curves_chart"), (curves.loss || []).map((_, index) => index + 1),
    ["loss", "val_loss"].filter((key) => curves[key]).map((key) => ({ key, label: t(`series.${key}`), data: curves[key] })),
    { x: t("series.epoch"), y: t("series.loss_axis") });
  await nextValues(model);
}

async function nextValues(model) {
  const [series, sequence] = Object.entries(model.series.last_window)[0];
  const answer = await api(`/api/v1/dl/predict-price?model=${encodeURIComponent(model.name)}`, {
    method: "POST", headers: jsonHeaders(), body: JSON.stringify({ sequence }) });
  const past = sequence.length, ahead = answer.predictions.length;
  const labels = [...sequence.map((_, i) => `t${i - past + 1 || ""}`), ...answer.predictions.map((_, i) => `t+${i + 1}`)];
  const pad = (values) => [...Array(past - 1).fill(null), sequence[past - 1], ...values];
  const sets = [{ key: "actual", label: t("series.last_window"), data: [...sequence, ...Array(ahead).fill(null)] },
    { key: "model", label: t("series.forecast_model"), data: pad(answer.predictions) },
    ...Object.entries(answer.baselines).map(([key, values]) => ({ key, label: t(`series.forecast_${key}`), data: pad(values), borderDash: [5, 4] }))];
  lineChart("next-chart", t("series.next_chart", { series: dataName(series), horizon: ahead, ms: number(answer.inference_ms, 2) }), labels, sets,
    { x: t("series.step_axis"), y: model.series.target });
  $("next-chart").dataset.state = "done";
}

// --- anomalies ------------------------------------------------------------------------------------------
async function showAnomalies(model, evaluation) {
  const [series, plot] = Object.entries(evaluation.plots)[0];
  const calibrated = model.anomaly.threshold.value;
  const answer = await detect(model.name, plot.values, null);
  anomaly = { name: model.name, series, ...plot, scores: answer.scores, calibrated };
  const top = Math.max(...answer.scores, calibrated) * 1.05;
  Object.assign($("threshold"), { max: String(top), step: String(top / 500), value: String(calibrated) });
  $("anomaly-box").classList.remove("d-none");
  drawAnomalies(answer);
}

function detect(name, values, threshold) {
  const query = threshold == null ? "" : `&threshold=${threshold}`;
  return api(`/api/v1/dl/detect-anomalies?model=${encodeURIComponent(name)}${query}`, {
    method: "POST", headers: jsonHeaders(), body: JSON.stringify({ series: values }) });
}

function drawAnomalies(answer) {
  const flagged = new Set(answer.flagged.map((point) => point.index));
  const injected = anomaly.labels.reduce((count, label) => count + label, 0);
  const hits = [...flagged].filter((index) => anomaly.labels[index]).length;
  $("threshold-label").textContent = t("series.threshold_label", { value: number(answer.threshold, 4), calibrated: number(anomaly.calibrated, 4) });
  $("anomaly-summary").textContent = t("series.anomaly_summary", { flagged: flagged.size, hits, injected,
    precision: flagged.size ? percent(hits / flagged.size, 0) : "—", recall: injected ? percent(hits / injected, 0) : "—" });
  lineChart("anomaly-chart", t("series.anomaly_chart", { series: dataName(anomaly.series) }), anomaly.dates, [
    { key: "actual", label: t("series.values_injected"), data: anomaly.values, borderWidth: 1.5 },
    { key: "injected", label: t("series.injected"), data: anomaly.values.map((v, i) => (anomaly.labels[i] ? v : null)), showLine: false, pointRadius: 5, pointStyle: "circle" },
    { key: "flagged", label: t("series.flagged"), data: anomaly.values.map((v, i) => (flagged.has(i) ? v : null)), showLine: false, pointRadius: 3, pointStyle: "crossRot", borderWidth: 2 },
  ], { x: t("series.date"), y: t("series.value_axis") });
  $("anomaly-chart").dataset.state = "done";
}

async function setThreshold(value) {
  try {
    drawAnomalies(await detect(anomaly.name, anomaly.values, value));
  } catch (error) { showError(error.message); }
}

// --- training -------------------------------------------------------------------------------------------
function horizonNote() {
  const window = Number($("train-window").value) || 0;
  const anomalyKind = $("train-kind").value === "train-anomaly-detector";
  $("horizon-note").textContent = anomalyKind ? t("series.window_note_anomaly", { window })
    : t("series.horizon_note", { window, horizon: horizonOf(window) });
}

const DEFAULT_SERIES = { "train-price-predictor": "msft", "train-spread-predictor": "msft-spread", "train-pattern-model": "co2", "train-anomaly-detector": "co2" };

async function startTraining(event) {
  event.preventDefault();
  showError("");
  const body = { epochs: Number($("train-epochs").value), batch_size: Number($("train-batch").value),
    learning_rate: Number($("train-lr").value), window: Number($("train-window").value), series: $("train-series").value };
  try {
    const answer = await api(`/api/v1/dl/${$("train-kind").value}`, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(body) });
    $("train-start").disabled = true;
    $("train-cancel").classList.remove("d-none");
    $("train-cancel").dataset.job = answer.job.id;
    follow(answer.url);
  } catch (error) {
    if (error.status === 401 || error.status === 403) openLogin(t("series.login_why"));
    showError(error.message);
  }
}

function follow(url) {
  clearTimeout(polling);
  const tick = async () => {
    let job;
    try { job = await api(url); } catch (error) { showError(error.message); return; }
    const progress = job.progress || {};
    const history = progress.history || [];
    const state = tOr(`series.job_${job.state}`, job.state);
    const eta = typeof job.eta_seconds === "number" ? t("series.eta", { seconds: formatNumber(Math.round(job.eta_seconds)) }) : "";
    $("train-status").textContent = t("series.job_status", { id: job.id, state, epoch: progress.epoch ?? 0, epochs: progress.epochs ?? "?", eta });
    if (history.length) {
      lineChart("train-chart", t("series.live_chart"), history.map((row) => row.step),
        ["loss", "val_loss"].filter((key) => key in history[0]).map((key) => ({ key, label: t(`series.${key}`), data: history.map((row) => row[key]), pointRadius: 2 })),
        { x: t("series.epoch"), y: t("series.loss_axis") });
    }
    if (["succeeded", "failed", "cancelled", "interrupted"].includes(job.state)) {
      $("train-start").disabled = false;
      $("train-cancel").classList.add("d-none");
      if (job.state === "succeeded") await loadInfo(job.project);
      else if (job.error) showError(job.error);
      return;
    }
    polling = setTimeout(tick, 1000);
  };
  tick();
}

async function cancelTraining() {
  try {
    await api(`/api/v1/jobs/${$("train-cancel").dataset.job}/cancel`, { method: "POST", headers: jsonHeaders(), body: "{}" });
  } catch (error) { showError(error.message); }
}

// --- wiring ---------------------------------------------------------------------------------------------
$("series-model").addEventListener("change", () => show($("series-model").value).catch((error) => showError(error.message)));
$("train-form").addEventListener("submit", startTraining);
$("train-cancel").addEventListener("click", cancelTraining);
$("train-window").addEventListener("input", horizonNote);
$("train-kind").addEventListener("change", () => { $("train-series").value = DEFAULT_SERIES[$("train-kind").value]; horizonNote(); });
$("threshold").addEventListener("input", () => { $("threshold-label").textContent = t("series.threshold_label", { value: number(Number($("threshold").value), 4), calibrated: number(anomaly.calibrated, 4) }); });
$("threshold").addEventListener("change", () => setThreshold(Number($("threshold").value)));
$("threshold-reset").addEventListener("click", () => { $("threshold").value = String(anomaly.calibrated); setThreshold(anomaly.calibrated); });
$("series-login").addEventListener("click", () => openLogin(t("series.login_why")));
bindLogin(null, () => $("series-admin-note").classList.add("d-none"));
horizonNote();
loadInfo().then(() => { document.querySelector("main").dataset.state = "done"; })
  .catch((error) => { showError(error.message); document.querySelector("main").dataset.state = "error"; });
