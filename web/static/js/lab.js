// CNN lab page: alerts with a badge, launch a training job and watch its live curves, the transform strip
// (the card's steps applied here in the browser, as serving applies them in models/transforms.py), from
// scratch vs transfer, the runs of the MLflow store (filter, compare 2-4 in one chart, best run) and sweeps
// (history, importances, parallel coordinates, retrain the best). Charts: the vendored Chart.js.
import { t } from "./i18n.js";
import { ALERTS_SEEN_KEY, api, bindLogin, element, formatNumber, jsonHeaders, labAlerts, openLogin, percent, showUnreadAlerts,
  table } from "./render.js";

const $ = (id) => document.getElementById(id);
const Chart = globalThis.Chart;
const charts = {};
const MAX_COMPARE = 4;
let selected = [];
let sweep = null;

const number = (value, digits = 3) => formatNumber(value, { maximumFractionDigits: digits });
const seconds = (value) => (typeof value === "number" ? t("lab.seconds", { value: number(value, 0) }) : "—");

function showError(message) {
  $("lab-error").textContent = message || "";
  $("lab-error").classList.toggle("d-none", !message);
}

/** Replace the chart on canvas ``id`` (Chart.js keeps one per canvas). */
function draw(id, config) {
  charts[id]?.destroy();
  charts[id] = new Chart($(id), { ...config, options: { responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "top" } }, ...config.options } });
}

const axis = (title, extra = {}) => ({ title: { display: true, text: title }, ...extra });

// --- alerts -----------------------------------------------------------------------------------------
function alertText(alert) {
  const values = Object.fromEntries(Object.entries(alert.values || {}).map(([k, v]) => [k, typeof v === "number" ? number(v, 4) : v]));
  return t(`lab.alert.${alert.rule}`, values);
}

async function loadAlerts() {
  const { alerts, fresh } = await labAlerts();
  $("alert-badge").textContent = t("lab.alerts_new", { count: fresh.length });
  $("alert-badge").classList.toggle("d-none", fresh.length === 0);
  $("alerts").replaceChildren(...(alerts.length ? alerts.slice(0, 12).map((a) => element("li",
    { className: `alert alert-${a.level} py-1 px-2 mb-1 small${fresh.includes(a) ? " fw-semibold" : ""}` },
    element("span", { className: "badge text-bg-light me-2", text: t(`lab.rule.${a.rule}`) }),
    `${a.run_name || a.model || a.sweep || ""}${a.epoch ? ` · ${t("lab.epoch", { epoch: a.epoch })}` : ""}: ${alertText(a)}`))
    : [element("li", { className: "small text-body-secondary", text: t("lab.alerts_none") })]));
  $("alerts-read").onclick = () => {
    if (alerts[0]) localStorage.setItem(ALERTS_SEEN_KEY, alerts[0].time);
    loadAlerts();
    showUnreadAlerts();
  };
}

// --- training job and live curves ---------------------------------------------------------------------
function formOptions(form, integers) {
  const options = {};
  for (const input of form.querySelectorAll("input")) {
    if (input.value === "") continue;
    options[input.name] = input.type === "number" ? Number(input.value) : input.value;
    if (integers.includes(input.name)) options[input.name] = Math.round(options[input.name]);
  }
  return options;
}

async function start(url, options) {
  showError("");
  try {
    const answer = await api(url, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(options) });
    follow(answer.url);
  } catch (error) {
    if (error.status === 401 || error.status === 403) openLogin(t("lab.login_needed"));
    showError(error.message);
  }
}

async function follow(url) {
  $("job").classList.remove("d-none");
  const job = await api(url);  // GET /api/v1/jobs/<id>: the job itself
  const progress = job.progress || {};
  const history = progress.history || [];
  const stage = progress.stage ? t("lab.stage", { stage: progress.stage, step: progress.epoch ?? "—", steps: progress.epochs ?? "—" }) : "";
  $("job-status").textContent = `${t(`lab.job.${job.state}`)} ${stage}${progress.eta_seconds ? ` · ${t("lab.eta", { value: number(progress.eta_seconds, 0) })}` : ""}${job.error ? ` · ${job.error}` : ""}${job.result?.test_accuracy != null
    ? ` · ${t("lab.job_result", { model: job.result.model, version: job.result.version, accuracy: percent(job.result.test_accuracy) })}` : ""}`;
  if (history.length) {
    const keys = ["loss", "val_loss", "accuracy", "val_accuracy", "best"].filter((k) => k in history[0]);
    draw("live-chart", { type: "line", data: { labels: history.map((h) => h.step),
      datasets: keys.map((k) => ({ label: t(`lab.metric.${k}`), data: history.map((h) => h[k]), yAxisID: k.includes("loss") ? "loss" : "acc" })) },
      options: { scales: { x: axis(t("lab.axis_step")), loss: axis(t("lab.axis_loss"), { position: "left" }),
        acc: axis(t("lab.axis_accuracy"), { position: "right", min: 0, max: 1 }) } } });
  }
  if (["queued", "running"].includes(job.state)) setTimeout(() => follow(url), 2000);
  else { loadRuns(); loadModels(); loadSweeps(); }
}

// --- transform strip --------------------------------------------------------------------------------
/** The card's serving steps on RGBA pixels: the same arithmetic as models/transforms.py (bilinear resize
 * through the canvas, which can differ from Pillow by a grey level or so). Returns [{name, params, data, w, h, c}]. */
function applySteps(image, steps) {
  const canvas = element("canvas", { attrs: { width: image.naturalWidth, height: image.naturalHeight } });
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height);
  let w = canvas.width, h = canvas.height, c = 3;
  let data = Float32Array.from({ length: w * h * 3 }, (_, i) => rgba.data[Math.floor(i / 3) * 4 + (i % 3)]);
  const out = [{ name: "input", params: {}, data, w, h, c }];
  for (const step of steps.filter((s) => !s.training_only)) {
    if (step.name === "channels" && step.channels !== c) {
      const next = new Float32Array(w * h * step.channels);
      for (let p = 0; p < w * h; p += 1) {
        if (step.channels === 1) next[p] = Math.round(data[p * 3] * 0.299 + data[p * 3 + 1] * 0.587 + data[p * 3 + 2] * 0.114);
        else next.fill(data[p], p * 3, p * 3 + 3);
      }
      data = next; c = step.channels;
    } else if (step.name === "resize" && (w !== step.size || h !== step.size)) {
      const source = element("canvas", { attrs: { width: w, height: h } });
      source.getContext("2d").putImageData(toImageData(data, w, h, c, false), 0, 0);
      const target = element("canvas", { attrs: { width: step.size, height: step.size } });
      target.getContext("2d").drawImage(source, 0, 0, step.size, step.size);
      const pixels = target.getContext("2d").getImageData(0, 0, step.size, step.size).data;
      w = step.size; h = step.size;
      data = Float32Array.from({ length: w * h * c }, (_, i) => pixels[Math.floor(i / c) * 4 + (i % c)]);
    } else if (step.name === "normalize") {
      data = data.map((v, i) => (v - step.mean[i % c]) / step.std[i % c]);
    }
    out.push({ name: step.name, params: Object.fromEntries(Object.entries(step).filter(([k]) => k !== "name")), data, w, h, c });
  }
  return out;
}

/** Pixels for a picture: 0-255 as they are, or (``stretch``) from their min to their max, like to_display(). */
function toImageData(data, w, h, c, stretch) {
  let low = 0, high = 255;
  if (stretch) { low = Math.min(...data); high = Math.max(...data); }
  const scale = 255 / Math.max(high - low, 1e-6);
  const image = new ImageData(w, h);
  for (let p = 0; p < w * h; p += 1) {
    for (let k = 0; k < 3; k += 1) image.data[p * 4 + k] = (data[p * c + (c === 1 ? 0 : k)] - low) * scale;
    image.data[p * 4 + 3] = 255;
  }
  return image;
}

function stripTile(step) {
  const canvas = element("canvas", { className: "lab-tile", attrs: { width: step.w, height: step.h, role: "img",
    "aria-label": t(`lab.step.${step.name}`) } });
  canvas.getContext("2d").putImageData(toImageData(step.data, step.w, step.h, step.c, step.name === "normalize"), 0, 0);
  let low = Infinity, high = -Infinity, sum = 0;
  for (const v of step.data) { low = Math.min(low, v); high = Math.max(high, v); sum += v; }
  const stats = t("lab.step_stats", { shape: `${step.h}×${step.w}×${step.c}`, min: number(low, 2), max: number(high, 2),
    mean: number(sum / step.data.length, 2) });
  return element("figure", { className: "lab-step mb-0", attrs: { "data-step": step.name, "data-mean": String(sum / step.data.length) } }, canvas,
    element("figcaption", { className: "small" }, element("strong", { text: t(`lab.step.${step.name}`) }), element("br"),
      t(`lab.step_explain.${step.name}`, Object.fromEntries(Object.entries(step.params).map(([k, v]) => [k, Array.isArray(v) ? v.map((x) => number(x, 1)).join(", ") : v]))),
      element("br"), element("span", { className: "text-body-secondary", text: stats })));
}

let models = [];
async function loadModels() {
  ({ models } = await api("/api/v1/lab/models"));
  const select = $("lab-model");
  const current = select.value;
  select.replaceChildren(...models.map((m) => element("option", { text: `${m.name} (${m.version})`, attrs: { value: m.name } })));
  if (current) select.value = current;
  if (!models.length) {
    $("strip").replaceChildren(element("p", { className: "small text-body-secondary", text: t("lab.no_models") }));
    return;
  }
  showModel();
}

function showModel(source = null) {
  const model = models.find((m) => m.name === $("lab-model").value) || models[0];
  const image = new Image();
  image.onload = () => {
    const steps = applySteps(image, model.transforms);
    const training = model.transforms.filter((s) => s.training_only).map((s) => element("p", { className: "small text-body-secondary w-100 mb-0",
      text: t("lab.training_only", { strength: number(s.strength, 2) }) }));
    $("strip").replaceChildren(...steps.map(stripTile), ...training);
    $("strip").dataset.state = "done";
  };
  image.src = source || model.sample;
  const test = model.metrics.test;
  $("model-summary").textContent = t("lab.model_summary", { accuracy: percent(test.accuracy), images: number(test.images, 0),
    parameters: number(model.architecture.parameters, 0), seconds: number(model.seconds?.total ?? 0, 0),
    depth: model.architecture.depth ?? "—", width: model.architecture.width ?? "—" });
}

// --- runs -------------------------------------------------------------------------------------------
function versus(runs) {
  const bestOf = (kind) => runs.filter((r) => r.kind === kind && r.metrics.test_accuracy != null)
    .sort((a, b) => b.metrics.test_accuracy - a.metrics.test_accuracy)[0];
  const rows = ["lab-train", "lab-transfer"].map((kind) => [kind, bestOf(kind)]).filter(([, run]) => run);
  if (!rows.length) {
    $("versus").replaceChildren(element("p", { className: "small text-body-secondary", text: t("lab.versus_none") }));
    return;
  }
  $("versus").replaceChildren(table([[t("lab.col.approach"), t("lab.col.test_accuracy"), t("lab.col.parameters"), t("lab.col.seconds"), t("lab.col.images")],
    ...rows.map(([kind, run]) => [t(`lab.kind.${kind}`), percent(run.metrics.test_accuracy), number(run.metrics.parameters, 0),
      seconds(run.metrics.train_seconds), number(Number(run.params["data.train_images"]) || 0, 0) === "0" ? t("lab.all_images") : number(Number(run.params["data.train_images"]), 0)])]));
}

async function loadRuns() {
  const query = new URLSearchParams({ kind: $("runs-kind").value, status: $("runs-status").value, limit: "60" });
  if ($("runs-q").value) query.set("q", $("runs-q").value);
  const { runs, best } = await api(`/api/v1/lab/runs?${query}`);
  if ($("runs-kind").value === "all") versus(runs);
  selected = selected.filter((id) => runs.some((r) => r.id === id));
  const header = ["", t("lab.col.run"), t("lab.col.kind"), t("lab.col.status"), t("lab.col.test_accuracy"), t("lab.col.val_accuracy"),
    t("lab.col.settings"), t("lab.col.seconds")];
  const rows = runs.map((run) => {
    const box = element("input", { className: "form-check-input", attrs: { type: "checkbox", "aria-label": t("lab.compare_this", { run: run.name }) } });
    box.checked = selected.includes(run.id);
    box.addEventListener("change", () => {
      selected = box.checked ? [...selected, run.id].slice(-MAX_COMPARE) : selected.filter((id) => id !== run.id);
      loadRuns();
      compare();
    });
    const p = run.params;
    const settings = [p["model.depth"] && t("lab.settings", { depth: p["model.depth"], width: p["model.width"], lr: number(Number(p["train.learning_rate"]), 5) }),
      run.tags.sweep && t("lab.in_sweep", { sweep: run.tags.sweep, trial: run.tags.trial }), run.tags.pruned && t("lab.pruned")].filter(Boolean).join(" · ");
    const name = element("span", { text: run.name });
    if (run.id === best) name.append(element("span", { className: "badge text-bg-success ms-1", text: t("lab.best") }));
    return [box, name, t(`lab.kind.${run.kind}`), run.tags.pruned ? t("lab.pruned") : t(`lab.status.${run.status}`),
      run.metrics.test_accuracy != null ? percent(run.metrics.test_accuracy) : "—",
      run.metrics.val_accuracy != null ? percent(run.metrics.val_accuracy) : "—", settings || "—", seconds(run.seconds)];
  });
  $("runs").replaceChildren(runs.length ? table([header, ...rows]) : element("p", { className: "small text-body-secondary", text: t("lab.runs_none") }));
  $("runs").dataset.state = "done";
}

async function compare() {
  const metric = $("compare-metric").value;
  const details = await Promise.all(selected.map((id) => api(`/api/v1/lab/runs/${id}`)));
  const datasets = details.map(({ run }) => ({ label: run.name, data: (run.curves[metric] || []).map(([x, y]) => ({ x, y })) }));
  $("compare-hint").textContent = datasets.length < 2 ? t("lab.compare_hint") : t("lab.compare_shown", { count: datasets.length });
  draw("compare-chart", { type: "line", data: { datasets }, options: { parsing: true,
    scales: { x: axis(t("lab.axis_epoch"), { type: "linear", ticks: { precision: 0 } }), y: axis(t(`lab.metric.${metric}`)) } } });
}

// --- sweeps -----------------------------------------------------------------------------------------
async function loadSweeps() {
  const { sweeps } = await api("/api/v1/lab/sweeps");
  const select = $("sweep-name");
  const current = select.value;
  select.replaceChildren(...sweeps.map((name) => element("option", { text: name, attrs: { value: name } })));
  if (current && sweeps.includes(current)) select.value = current;
  $("retrain-best").disabled = !sweeps.length;
  if (!sweeps.length) { $("sweep-summary").textContent = t("lab.sweeps_none"); return; }
  showSweep();
}

async function showSweep() {
  ({ sweep } = await api(`/api/v1/lab/sweeps/${$("sweep-name").value}`));
  const { counts, best, default: base } = sweep;
  $("sweep-summary").textContent = [t("lab.sweep_counts", { trials: sweep.trials.length, complete: counts.complete, pruned: counts.pruned,
    failed: counts.fail, seconds: number(sweep.wall_seconds, 0), images: number(sweep.data.train, 0) }),
  best && t("lab.sweep_best", { trial: best.number, value: percent(best.value), test: best.test_accuracy != null ? percent(best.test_accuracy) : "—" }),
  base?.value != null && t("lab.sweep_default", { value: percent(base.value) })].filter(Boolean).join(" ");
  let running = -Infinity;
  const finished = sweep.trials.filter((trial) => trial.value != null);
  draw("history-chart", { data: { datasets: [
    { type: "scatter", label: t("lab.trial_value"), data: finished.map((trial) => ({ x: trial.number, y: trial.value })) },
    { type: "line", label: t("lab.best_so_far"), stepped: true, data: finished.map((trial) => ({ x: trial.number, y: (running = Math.max(running, trial.value)) })) },
    { type: "scatter", label: t("lab.pruned_trials"), pointStyle: "crossRot", data: sweep.trials.filter((trial) => trial.state === "pruned")
      .map((trial) => ({ x: trial.number, y: trial.intermediate.at(-1)?.[1] ?? null })) }] },
  options: { scales: { x: axis(t("lab.axis_trial"), { type: "linear", ticks: { precision: 0 } }), y: axis(t("lab.metric.val_accuracy")) } } });
  const importances = Object.entries(sweep.importances);
  draw("importance-chart", { type: "bar", data: { labels: importances.map(([k]) => t(`lab.param.${k}`)),
    datasets: [{ label: t("lab.importance"), data: importances.map(([, v]) => v) }] },
  options: { indexAxis: "y", scales: { x: axis(t("lab.importance"), { min: 0, max: 1 }) } } });
  const names = Object.keys(sweep.space);
  const scale = (name, value) => {
    const space = sweep.space[name];
    if (space.kind === "choice") return space.low.indexOf(value) / Math.max(space.low.length - 1, 1);
    if (space.kind === "log") return Math.log(value / space.low) / Math.log(space.high / space.low);
    return (value - space.low) / (space.high - space.low);
  };
  const values = finished.map((trial) => trial.value);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  draw("parallel-chart", { type: "line", data: { labels: [...names.map((n) => t(`lab.param.${n}`)), t("lab.metric.val_accuracy")],
    datasets: finished.map((trial) => {
      const shade = (trial.value - low) / Math.max(high - low, 1e-9);
      const colour = `rgba(${Math.round(220 - 180 * shade)}, ${Math.round(80 + 100 * shade)}, ${Math.round(200 - 120 * shade)}, ${0.35 + 0.65 * shade})`;
      return { label: t("lab.trial", { trial: trial.number }), borderColor: colour, backgroundColor: colour,
        data: [...names.map((n) => scale(n, trial.params[n])), shade] };
    }) },
  options: { plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => {
    const trial = finished[item.datasetIndex];
    const name = names[item.dataIndex];
    return `${item.dataset.label}: ${name ? `${t(`lab.param.${name}`)} = ${number(trial.params[name], 4)}` : percent(trial.value)}`;
  } } } }, scales: { y: axis(t("lab.parallel_axis"), { min: 0, max: 1 }) } } });
  $("parallel-chart").closest(".lab-chart").dataset.state = "done";
}

// --- wiring -----------------------------------------------------------------------------------------
$("train-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start("/api/v1/lab/train", formOptions(event.target, ["epochs", "batch_size", "depth", "width", "train_images"]));
});
$("sweep-form").addEventListener("submit", (event) => {
  event.preventDefault();
  start("/api/v1/lab/sweeps", formOptions(event.target, ["trials", "train_images", "epochs"]));
});
$("retrain-best").addEventListener("click", () => start("/api/v1/lab/train", { sweep: $("sweep-name").value }));
$("lab-model").addEventListener("change", () => showModel());
$("lab-photo").addEventListener("change", async () => {
  const file = $("lab-photo").files[0];
  if (!file || !models.length) return;
  const model = $("lab-model").value || models[0].name;
  showModel(URL.createObjectURL(file));  // the browser's steps on the photo, beside the server's answer
  const body = new FormData();
  body.append("image", file);
  try {
    const answer = await api(`/api/v1/lab/predict?model=${encodeURIComponent(model)}`, { method: "POST", body });
    $("lab-answer").textContent = t("lab.answer", { answers: answer.top.map((a) => `${a.label} ${percent(a.probability)}`).join(", "),
      shape: answer.input.shape.join("×"), mean: number(answer.input.mean, 2) });
  } catch (error) {
    $("lab-answer").textContent = error.message;
  }
});
$("sweep-name").addEventListener("change", showSweep);
for (const id of ["runs-kind", "runs-status"]) $(id).addEventListener("change", loadRuns);
$("runs-q").addEventListener("input", () => { clearTimeout(loadRuns.timer); loadRuns.timer = setTimeout(loadRuns, 300); });
$("compare-metric").addEventListener("change", compare);
bindLogin(showError);

const guarded = (task) => task().catch((error) => showError(error.message));
await Promise.all([loadAlerts, loadModels, loadRuns, loadSweeps].map(guarded));
setInterval(() => guarded(loadAlerts), 5000);
document.querySelector("main").dataset.state = "ready";
