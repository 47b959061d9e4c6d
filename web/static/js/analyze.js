// Analyze page: one image (file, drop, paste or webcam) is classified twice — by the server (ONNX
// Runtime, /api/v1/predict) and in this browser (TF.js wasm, edge.js) — and the answers are shown side
// by side with the class activation map, tags, anomaly verdicts and timings.
import { t } from "./i18n.js";
import { chosenModel, classify, currentVersion, loadEdgeModel, modelChoices, rememberModel, tfjsFormats } from "./edge.js";
import { toImageData } from "./preprocess.js";
import { bar, element, heatmapUrl, imageDataUrl, jsonHeaders, labelText, ms, percent, setBadge } from "./render.js";

const $ = (id) => document.getElementById(id);
let modelName = $("model-select").dataset.classModel || $("main").dataset.model;
let models = [];  // the models with a promoted version (edge.js modelChoices)
let lastImage = null;  // {blob, filename}: analysed again when another model is chosen
const errorBox = $("error");
let edge = null;
let edgeLoading = null;
let cams = {};

function showError(message) {
  errorBox.textContent = message;
  errorBox.classList.toggle("d-none", !message);
}

// --- edge model ------------------------------------------------------------------------------------
function setProgress(fraction) {
  const box = $("edge-progress");
  box.setAttribute("aria-valuenow", Math.round(fraction * 100));
  box.firstElementChild.style.width = `${fraction * 100}%`;
}

// The browser model of the chosen model (NAME); a load overtaken by another choice is dropped.
async function prepareEdge(format, name = modelName) {
  const status = $("edge-status");
  status.textContent = t("edge.loading");
  status.dataset.state = "loading";
  edge = null;
  try {
    const loaded = await loadEdgeModel(name, format, setProgress);
    if (name !== modelName) return edge;
    edge = loaded;
    status.textContent = t(loaded.source === "cache" ? "edge.ready_cache" : "edge.ready_network", {
      version: `${loaded.name} ${loaded.version}`, format: loaded.format, backend: loaded.backend,
      seconds: (loaded.loadMs / 1000).toFixed(2) });
    status.dataset.state = "ready";
    status.dataset.source = loaded.source;
    status.dataset.loadMs = loaded.loadMs.toFixed(1);
  } catch (error) {
    if (name !== modelName) return edge;
    status.textContent = t("edge.unavailable", { reason: error.message });
    status.dataset.state = "unavailable";
  }
  return edge;
}

function initEdge() {
  const name = modelName;
  edge = null;
  $("edge-status").textContent = t("edge.loading");
  $("edge-status").dataset.state = "loading";
  edgeLoading = (async () => {
    try {
      const { card } = await currentVersion(name);
      $("edge-format").replaceChildren(...tfjsFormats(card).map((fmt) =>
        element("option", { text: t(`edge.format_${fmt}`) === `edge.format_${fmt}` ? fmt : t(`edge.format_${fmt}`),
          attrs: { value: fmt } })));
    } catch { $("edge-format").replaceChildren(); /* no TF.js version: prepareEdge reports it */ }
    return prepareEdge($("edge-format").value || undefined, name);
  })();
}

$("edge-format").addEventListener("change", (event) => { edge = null; edgeLoading = prepareEdge(event.target.value); });

// --- the model: this browser's choice, else the class default; the teacher can set the class default ---
function showModelNote() {
  const model = models.find((entry) => entry.name === modelName);
  $("model-note").textContent = model && !model.calibrated ? t("model.not_calibrated", { labels: model.labels.join(", ") }) : "";
  $("model-note").classList.toggle("d-none", !model || model.calibrated);
}

async function initModels() {
  const choices = await modelChoices(modelName);
  models = choices.models;
  modelName = chosenModel(choices);
  const select = $("model-select");
  select.dataset.classModel = choices.classModel;
  if (models.length) {
    select.replaceChildren(...models.map((model) => element("option", { attrs: { value: model.name },
      text: t("model.option", { name: model.name, version: model.version, labels: model.labels.map(labelText).join(", ") })
        + (model.name === choices.classModel ? t("model.class_default") : "") })));
  }
  select.value = modelName;
  showModelNote();
  initEdge();
  try {
    const me = await (await fetch("/api/v1/auth/me")).json();
    if (me.csrf_token) document.querySelector('meta[name="csrf-token"]').content = me.csrf_token;
    $("class-default-box").classList.toggle("d-none", !me.user?.is_admin);
  } catch { /* offline: no admin actions */ }
}

$("model-select").addEventListener("change", (event) => {
  modelName = event.target.value;
  rememberModel(modelName);
  showModelNote();
  $("class-default-status").textContent = "";
  initEdge();
  if (lastImage) analyze(lastImage.blob, lastImage.filename);
});

$("class-default").addEventListener("click", async () => {
  try {
    const response = await fetch(`/api/v1/class-model?lang=${document.documentElement.lang}`,
      { method: "PUT", headers: jsonHeaders(), body: JSON.stringify({ model: modelName }) });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error?.message || response.statusText);
    $("class-default-status").textContent = t("model.class_default_set", { name: answer.model });
    $("model-select").dataset.classModel = answer.model;
    [...$("model-select").options].forEach((option) => {
      const model = models.find((entry) => entry.name === option.value);
      if (model) option.textContent = t("model.option", { name: model.name, version: model.version, labels: model.labels.map(labelText).join(", ") })
        + (model.name === answer.model ? t("model.class_default") : "");
    });
  } catch (error) {
    $("class-default-status").textContent = error.message;
  }
});

// Every answer of a model without an "unknown" calibration says so.
function calibrationNote(panel, calibrated) {
  let note = panel.querySelector(".result-calibration");
  if (!note) {
    note = element("p", { className: "small text-warning-emphasis mb-1 result-calibration" });
    panel.querySelector(".result-time").before(note);
  }
  note.textContent = calibrated === false ? t("model.answer_not_calibrated") : "";
  note.classList.toggle("d-none", calibrated !== false);
  panel.dataset.calibrated = String(calibrated !== false);
}


// --- results ---------------------------------------------------------------------------------------
function showPanel(panel, result, seconds, note) {
  setBadge(panel.querySelector(".result-label"), result);
  panel.querySelector(".result-bars").replaceChildren(...Object.entries(result.probabilities)
    .map(([name, p]) => bar(name, p, name === result.label)));
  panel.querySelector(".result-time").textContent = `${t("compare.time")}: ${ms(seconds)}${note ? ` · ${note}` : ""}`;
  panel.dataset.label = result.label;
  calibrationNote(panel, result.calibrated);
  panel.dataset.probabilities = JSON.stringify(result.probabilities);
  const score = result.ood_score ?? result.anomalies?.out_of_distribution?.score;
  if (score == null) delete panel.dataset.oodScore;
  else panel.dataset.oodScore = score;
}

function showUnavailable(panel, message) {
  const badge = panel.querySelector(".result-label");
  badge.textContent = t("compare.unavailable");
  badge.className = "badge result-label text-bg-secondary";
  panel.querySelector(".result-bars").replaceChildren(element("p", { className: "small mb-0", text: message }));
  panel.querySelector(".result-time").textContent = "";
  calibrationNote(panel, undefined);
  delete panel.dataset.label;
  delete panel.dataset.oodScore;
}

function showCam() {
  const source = $("cam-source").value;
  const cam = cams[source] || cams.edge || cams.server;
  if (!cam) return;
  $("cam-base").src = cam.base;
  $("cam-heat").src = cam.heat;
  $("cam-heat").classList.toggle("d-none", !cam.heat);
  $("explanation").classList.remove("d-none");
}

// One line per anomaly check of the server's answer (issue-6 schema: anomalous, score, threshold, reason).
function anomalyItems(anomalies) {
  return Object.entries(anomalies).map(([kind, verdict]) => {
    const name = t(`anomaly.${kind}`) === `anomaly.${kind}` ? kind : t(`anomaly.${kind}`);
    const available = verdict.available !== false;
    const reasons = (verdict.checks || []).filter((check) => check.flagged).map((check) => check.reason);
    const score = "score" in verdict ? t("anomaly.score", { score: Number(verdict.score).toFixed(3),
      threshold: Number(verdict.threshold).toFixed(3) }) : "";
    const badge = !available ? ["text-bg-secondary", t("anomaly.unavailable")]
      : verdict.anomalous ? ["text-bg-danger", t("anomaly.flagged")] : ["text-bg-success", t("anomaly.normal")];
    return element("li", { className: "mb-1", attrs: { "data-kind": kind } },
      element("span", { className: `badge me-2 ${badge[0]}`, text: badge[1] }), element("strong", { text: name }),
      element("span", { text: [[verdict.reason, ...reasons].filter(Boolean).join(" · "), score]
        .filter(Boolean).map((part) => ` — ${part}`).join("") }));
  });
}

function pixelTags(tags) {
  if (!tags) return [];
  return [...(tags.colours || []).map((colour) => colour.name),
    ...["brightness", "sharpness"].filter((key) => tags[key]?.name).map((key) => `${t(`analyze.${key}`)}: ${tags[key].name}`)];
}

function showDetails(server, local) {
  const tags = [...(server?.tags || local?.tags || []).map((tag) => `${tag.label} ${percent(tag.probability)}`),
    ...pixelTags(server?.pixel_tags)];
  $("tags").replaceChildren(...tags.map((text) => element("li", {
    className: "list-inline-item badge text-bg-light border", text })));
  const anomalies = server?.anomalies || {};
  const items = anomalyItems(anomalies);
  $("anomalies").replaceChildren(...items);
  $("anomalies-block").classList.toggle("d-none", !items.length);
  const regions = anomalies.unusual_regions?.overlay || anomalies.unusual_regions?.heatmap;
  $("anomaly-toggle").classList.toggle("d-none", !regions);
  $("anomaly-heatmap").classList.add("d-none");
  $("anomaly-toggle").setAttribute("aria-pressed", "false");
  if (regions) $("anomaly-heatmap").src = regions;
  $("details").classList.remove("d-none");
}

function showTimings(server, serverMs, local) {
  const rows = { round_trip_ms: [serverMs, null] };
  Object.entries(server?.timings || {}).forEach(([key, value]) => { rows[key] = [value, null]; });
  Object.entries(local?.timings || {}).forEach(([key, value]) => { rows[key] = [rows[key]?.[0] ?? null, value]; });
  $("timings").tBodies[0].replaceChildren(...Object.entries(rows).map(([key, [s, e]]) => element("tr", {},
    element("th", { text: t(`timings.${key}`) === `timings.${key}` ? key : t(`timings.${key}`), attrs: { scope: "row" } }),
    element("td", { text: s == null ? "—" : ms(s) }), element("td", { text: e == null ? "—" : ms(e) }))));
}

async function askServer(blob, filename) {
  const body = new FormData();
  body.append("image", blob, filename);
  const started = performance.now();
  const response = await fetch(`/api/v1/predict?explain=1&anomaly=1&model=${encodeURIComponent(modelName)}&lang=${document.documentElement.lang}`,
    { method: "POST", body });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error?.message || response.statusText);
  return { answer, roundTripMs: performance.now() - started };
}

async function askEdge(blob) {
  await edgeLoading;
  if (!edge) throw new Error($("edge-status").textContent);
  return { ...(await classify(edge, blob)), calibrated: Boolean(edge.card.unknown_policy.ood) };
}

const settle = (promise) => promise.then((value) => ({ status: "fulfilled", value }),
  (reason) => ({ status: "rejected", reason }));

async function analyze(blob, filename = "image") {
  lastImage = { blob, filename };
  document.body.dataset.state = "working";
  showError("");
  $("preview").src = URL.createObjectURL(blob);
  $("preview").classList.remove("d-none");
  // One after the other when the browser model is ready, so neither timing includes the other's work.
  const [server, local] = edge
    ? [await settle(askEdge(blob)), await settle(askServer(blob, filename))].reverse()
    : await Promise.allSettled([askServer(blob, filename), askEdge(blob)]);
  const serverResult = server.status === "fulfilled" ? server.value.answer.results[0] : null;
  const edgeResult = local.status === "fulfilled" ? local.value : null;
  if (serverResult) {
    showPanel($("server-result"), serverResult, server.value.roundTripMs,
      `${server.value.answer.model.name} ${server.value.answer.model.version}`);
  } else {
    showUnavailable($("server-result"), server.reason.message.includes("fetch") ? t("compare.offline") : server.reason.message);
  }
  if (edgeResult) showPanel($("edge-result"), edgeResult, edgeResult.timings.total_ms, edge.format);
  else showUnavailable($("edge-result"), local.reason.message);
  if (!serverResult && !edgeResult) showError(server.reason.message);
  $("disagreement").classList.toggle("d-none", !(serverResult && edgeResult && serverResult.label !== edgeResult.label));

  cams = {};
  delete $("explanation").dataset.serverGrid;
  delete $("explanation").dataset.edgeGrid;
  if (edgeResult?.cam) {
    const size = edge.card.input.size;
    cams.edge = { base: imageDataUrl(toImageData(edgeResult.pixels, size)),
      heat: heatmapUrl(edgeResult.cam.values, edgeResult.cam.height, edgeResult.cam.width, size) };
  }
  const explanation = serverResult?.explanation;
  if (explanation?.grid) {
    const grid = explanation.grid;
    $("explanation").dataset.serverGrid = JSON.stringify(grid.flat());
    cams.server = cams.edge
      ? { base: cams.edge.base, heat: heatmapUrl(grid.flat(), grid.length, grid[0].length, edge.card.input.size) }
      : { base: explanation.overlay, heat: "" };
  }
  if (edgeResult?.cam) $("explanation").dataset.edgeGrid = JSON.stringify(Array.from(edgeResult.cam.values));
  $("cam-source").querySelector('option[value="server"]').disabled = !cams.server;
  $("cam-source").value = cams.edge ? "edge" : "server";
  showCam();
  if (serverResult || edgeResult) {
    showDetails(serverResult, edgeResult);
    showTimings(server.value?.answer, server.value?.roundTripMs, edgeResult);
  }
  document.body.dataset.state = "done";
}

// --- inputs ----------------------------------------------------------------------------------------
$("image-input").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) analyze(file, file.name);
});

const dropZone = $("drop-zone");
dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("image-input").click(); }
});
["dragenter", "dragover"].forEach((name) => dropZone.addEventListener(name, (event) => {
  event.preventDefault();
  dropZone.classList.add("drop-active");
}));
["dragleave", "drop"].forEach((name) => dropZone.addEventListener(name, () => dropZone.classList.remove("drop-active")));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/"));
  if (file) analyze(file, file.name);
});
document.addEventListener("paste", (event) => {
  const item = [...event.clipboardData.items].find((entry) => entry.type.startsWith("image/"));
  if (item) analyze(item.getAsFile(), "pasted.png");
});

let stream = null;
$("camera-start").addEventListener("click", async () => {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    $("camera").srcObject = stream;
    $("camera").classList.remove("d-none");
    $("camera-capture").classList.remove("d-none");
  } catch (error) {
    showError(t("analyze.camera_error", { reason: error.message }));
  }
});
$("camera-capture").addEventListener("click", () => {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => analyze(blob, "camera.png"), "image/png");
});

$("cam-opacity").addEventListener("input", (event) => { $("cam-heat").style.opacity = event.target.value / 100; });
$("cam-heat").style.opacity = $("cam-opacity").value / 100;
$("cam-source").addEventListener("change", showCam);
$("anomaly-toggle").addEventListener("click", (event) => {
  const shown = $("anomaly-heatmap").classList.toggle("d-none") === false;
  event.target.setAttribute("aria-pressed", String(shown));
});

initModels();
