// Analyze page: one image (file, drop, paste or webcam) is classified twice — by the server (ONNX
// Runtime, /api/v1/predict) and in this browser (TF.js wasm, edge.js) — and the answers are shown side
// by side with the class activation map, tags, anomaly verdicts and timings.
import { t } from "./i18n.js";
import { chosenModel, classify, currentVersion, explain, loadWorkerModel, modelChoices, rememberModel, tfjsFormats } from "./edge.js";
import { decodePixels, modelPixels, toImageData } from "./preprocess.js";
import { api, bar, element, formatNumber, heatmapUrl, imageDataUrl, jsonHeaders, labelText, ms, pageLanguage, percent, setBadge, tOr, why } from "./render.js";
import { colourise } from "./contract.js";

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
// The download's progress (bar and megabytes); the model is loaded and run in a Web Worker (edge-worker.js).
function setProgress(fraction, received, total) {
  if (received < total) {
    $("edge-status").textContent = t("edge.downloading", { done: formatNumber(received / 2 ** 20, { maximumFractionDigits: 1 }),
      total: formatNumber(total / 2 ** 20, { maximumFractionDigits: 1 }) });
  }
  const box = $("edge-progress");
  box.setAttribute("aria-valuenow", Math.round(fraction * 100));
  box.firstElementChild.style.width = `${fraction * 100}%`;
}

// A TF.js format id ("tfjs", "tfjs_uint8") as the variant the page offers ("float16", "uint8").
const variantText = (format) => tOr(`edge.variant_${format}`, format);

// The browser model of the chosen model (NAME); a load overtaken by another choice is dropped.
async function prepareEdge(format, name = modelName) {
  const status = $("edge-status");
  status.textContent = t("edge.loading");
  status.dataset.state = "loading";
  edge = null;
  try {
    const loaded = await loadWorkerModel(name, format, setProgress);
    if (name !== modelName) return edge;
    edge = loaded;
    status.textContent = t(loaded.source === "cache" ? "edge.ready_cache" : "edge.ready_network", {
      version: `${loaded.name} ${loaded.version}`, format: variantText(loaded.format), backend: loaded.backend,
      seconds: (loaded.loadMs / 1000).toFixed(2) });
    status.dataset.state = "ready";
    status.dataset.source = loaded.source;
    status.dataset.loadMs = loaded.loadMs.toFixed(1);
  } catch (error) {
    if (name !== modelName) return edge;
    status.textContent = t("edge.unavailable", { reason: error.key ? t(error.key) : error.message });
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
      if (name !== modelName) return edge;  // another model was chosen meanwhile: its own initEdge runs
      $("edge-format").replaceChildren(...tfjsFormats(card).map((fmt) =>
        element("option", { text: t(`edge.format_${fmt}`) === `edge.format_${fmt}` ? fmt : t(`edge.format_${fmt}`),
          attrs: { value: fmt } })));
    } catch {
      if (name !== modelName) return edge;
      $("edge-format").replaceChildren();  // no TF.js version: prepareEdge reports it
    }
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

// --- explanations in place: the card of the answering version, ImageNet names in the page language ----
const cards = new Map();
async function cardFor(name, version) {
  if (edge?.name === name && edge?.version === version) return edge.card;
  const key = `${name}:${version}`;
  if (!cards.has(key)) cards.set(key, api(`/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`).catch(() => null));
  return cards.get(key);
}

let imagenetNames = null;  // the 1,000 ImageNet names in the page language (by tag index); English keeps the tag's own
function localNames() {
  if (pageLanguage === "en") return Promise.resolve(null);
  imagenetNames ??= fetch(`/imagenet-labels.${pageLanguage}.json`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return imagenetNames;
}

const probabilityText = (p) => percent(p);

// Why the panel says what it says: the class sums of the default model, where the rest of the probability
// went, and why the answer is "unknown" (no class reaches the threshold, or the image is unusual).
function panelWhy(result, card, names) {
  const parts = [];
  const mapping = card?.label_mapping;
  const total = Object.values(result.probabilities).reduce((sum, p) => sum + p, 0);
  if (mapping) {
    const classes = Object.entries(mapping).map(([label, indices]) => {
      const examples = indices.slice(0, 3).map((i) => names?.[i] ?? card.imagenet_names?.[i]).filter(Boolean);
      return t("explain.class_sum", { label: labelText(label), n: indices.length, examples: examples.length ? ` (${examples.join(", ")}…)` : "" });
    });
    parts.push(t("explain.sums", { classes: classes.join("; ") }));
    if (total < 0.995) parts.push(t("explain.rest", { rest: probabilityText(Math.max(0, 1 - total)) }));
  } else {
    parts.push(t("explain.softmax", { labels: Object.keys(result.probabilities).map(labelText).join(", ") }));
  }
  if (result.unknown) {
    const ood = result.anomalies?.out_of_distribution;
    const threshold = card?.unknown_policy?.threshold;
    const best = Math.max(...Object.values(result.probabilities));
    if (ood?.anomalous || (result.ood_score != null && card?.unknown_policy?.ood && result.ood_score > card.unknown_policy.ood.threshold)) {
      parts.push(t("explain.unknown_ood"));
    } else if (threshold != null && best < threshold) {
      parts.push(t("explain.unknown_threshold", { best: probabilityText(best), threshold: probabilityText(threshold) }));
    } else parts.push(t("analyze.unknown_hint"));
  } else if (card?.unknown_policy?.threshold != null) {
    parts.push(t("explain.known", { threshold: probabilityText(card.unknown_policy.threshold) }));
  }
  return parts;
}

async function explainPanel(panel, result, name, version) {
  const box = panel.querySelector(".result-why");
  if (!result) { box.replaceChildren(); return; }
  const [card, names] = await Promise.all([cardFor(name, version), localNames()]);
  const rest = panel.querySelector(".result-rest");
  rest?.remove();
  const total = Object.values(result.probabilities).reduce((sum, p) => sum + p, 0);
  if (card?.label_mapping && total < 0.995) {  // the probability of every other ImageNet class, as its own bar
    const other = bar("other", Math.max(0, 1 - total));
    other.classList.add("result-rest");
    other.firstChild.textContent = `${t("explain.other")} — ${percent(Math.max(0, 1 - total))}`;
    panel.querySelector(".result-bars").append(other);
  }
  const lines = panelWhy(result, card, names);
  box.replaceChildren(why(lines.join(" "), result.unknown ? t("explain.why_unknown") : t("explain.why_numbers")));
}

// The OOD verdict as "typical / unusual" with the raw score on hover; regions and quality with their reasons.
function anomalyItems(anomalies) {
  return Object.entries(anomalies).map(([kind, verdict]) => {
    const name = tOr(`anomaly.${kind}`, kind);
    const available = verdict.available !== false;
    const reasons = (verdict.checks || []).filter((check) => check.flagged).map((check) => check.reason);
    if (kind === "unusual_regions" && !verdict.anomalous && anomalies.out_of_distribution?.anomalous) {
      reasons.push(t("anomaly.regions_whole_image"));
    }
    const typical = kind === "out_of_distribution" || kind === "unusual_regions";
    const badge = !available ? ["text-bg-secondary", t("anomaly.unavailable")]
      : verdict.anomalous ? ["text-bg-danger", t(typical ? "anomaly.unusual" : "anomaly.flagged")]
        : ["text-bg-success", t(typical ? "anomaly.typical" : "anomaly.normal")];
    const item = element("li", { className: "mb-1", attrs: { "data-kind": kind } },
      element("span", { className: `badge me-2 ${badge[0]}`, text: badge[1] }), element("strong", { text: name }),
      element("span", { text: [verdict.reason, ...reasons].filter(Boolean).map((part) => ` — ${part}`).join("") }));
    if ("score" in verdict) {
      const scoreText = t("anomaly.score_hover", { score: formatNumber(Number(verdict.score), { maximumFractionDigits: 3 }),
        threshold: formatNumber(Number(verdict.threshold), { maximumFractionDigits: 3 }),
        method: verdict.method ? tOr(`anomaly.method_${verdict.method}`, verdict.method) : "" });
      item.title = scoreText;
      item.append(why(`${t(`anomaly.why_${kind}`)} ${scoreText}`));
    } else if (kind === "quality") item.append(why(t("anomaly.why_quality")));
    return item;
  });
}

function pixelTags(tags) {
  if (!tags) return [];
  return [...(tags.colours || []).map((colour) => colour.name),
    ...["brightness", "sharpness"].filter((key) => tags[key]?.name).map((key) => `${t(`analyze.${key}`)}: ${tags[key].name}`)];
}

// A [0, 1] legend bar in the shared colour map (the CAM and the unusual-regions map use the same one).
const legendUrl = (() => {
  let url = null;
  return () => {
    if (url) return url;
    const width = 256;
    const ramp = Float32Array.from({ length: width * 2 }, (_, i) => (i % width) / (width - 1));
    const canvas = element("canvas");
    canvas.width = width;
    canvas.height = 2;
    canvas.getContext("2d").putImageData(new ImageData(colourise(ramp), width, 2), 0, 0);
    url = canvas.toDataURL("image/png");
    return url;
  };
})();

async function showDetails(server, local, baseImage) {
  const names = await localNames();
  const tags = server?.tags || local?.tags || [];
  $("tags").replaceChildren(...tags.map((tag) => element("li", {
    className: "list-inline-item badge text-bg-light border tag",
    text: `${names?.[tag.index] ?? tag.label} ${percent(tag.probability)}`,
    attrs: { title: `ImageNet #${tag.index}: ${tag.label}`, lang: names ? pageLanguage : "en", "data-index": tag.index } })));
  const pixels = pixelTags(server?.pixel_tags);
  $("pixel-tags").replaceChildren(...pixels.map((text) => element("li", { className: "list-inline-item badge text-bg-secondary", text })));
  $("pixel-tags").previousElementSibling.classList.toggle("d-none", !pixels.length);
  const anomalies = server?.anomalies || {};
  const items = anomalyItems(anomalies);
  $("anomalies").replaceChildren(...items);
  $("anomalies-block").classList.toggle("d-none", !items.length);
  const regions = anomalies.unusual_regions?.heatmap;
  $("anomaly-toggle").classList.toggle("d-none", !regions);
  $("anomaly-map").classList.add("d-none");
  $("anomaly-toggle").setAttribute("aria-pressed", "false");
  $("anomaly-toggle").textContent = t("anomaly.toggle");
  if (regions) {
    $("anomaly-base").src = baseImage || anomalies.unusual_regions.overlay || "";
    $("anomaly-heatmap").src = regions;
  }
  $("details").classList.remove("d-none");
}

// Rows in the order of the work (decode → preprocess → inference → CAM/analysis → total → round trip).
const TIMING_ORDER = ["decode_ms", "preprocess_ms", "inference_ms", "cam_ms", "analysis_ms", "total_ms", "round_trip_ms"];
const timingRank = (key) => (TIMING_ORDER.includes(key) ? TIMING_ORDER.indexOf(key) : TIMING_ORDER.length - 2);

function showTimings(server, serverMs, local) {
  const rows = {};
  Object.entries(server?.timings || {}).forEach(([key, value]) => { rows[key] = [value, null]; });
  Object.entries(local?.timings || {}).forEach(([key, value]) => { rows[key] = [rows[key]?.[0] ?? null, value]; });
  if (serverMs != null) rows.round_trip_ms = [serverMs, null];
  const ordered = Object.entries(rows).sort(([a], [b]) => timingRank(a) - timingRank(b));
  $("timings").tBodies[0].replaceChildren(...ordered.map(([key, [s, e]]) => element("tr", {},
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

function showEdgeAnswer(local) {
  if (local.status === "fulfilled") {
    showPanel($("edge-result"), local.value, local.value.timings.total_ms, `${edge.name} ${edge.version} · ${variantText(edge.format)}`);
  } else {
    showUnavailable($("edge-result"), local.reason.key ? t("edge.unavailable", { reason: t(local.reason.key) }) : local.reason.message);
  }
}

const settle = (promise) => promise.then((value) => ({ status: "fulfilled", value }),
  (reason) => ({ status: "rejected", reason }));

async function analyze(blob, filename = "image") {
  lastImage = { blob, filename };
  document.body.dataset.state = "working";
  showError("");
  $("preview").src = URL.createObjectURL(blob);
  $("preview").classList.remove("d-none");
  // The browser's answer is shown as soon as it is there; when the browser model is ready the server is
  // asked after it, so neither timing includes the other's work.
  const answered = settle(askEdge(blob)).then((local) => { showEdgeAnswer(local); return local; });
  if (edge) await answered;
  const server = await settle(askServer(blob, filename));
  const local = await answered;
  const serverResult = server.status === "fulfilled" ? server.value.answer.results[0] : null;
  const edgeResult = local.status === "fulfilled" ? local.value : null;
  if (serverResult) {
    showPanel($("server-result"), serverResult, server.value.roundTripMs,
      `${server.value.answer.model.name} ${server.value.answer.model.version}`);
  } else {
    showUnavailable($("server-result"), server.reason.message.includes("fetch") ? t("compare.offline") : server.reason.message);
  }
  if (!serverResult && !edgeResult) showError(server.reason.message);
  $("disagreement").classList.toggle("d-none", !(serverResult && edgeResult && serverResult.label !== edgeResult.label));

  cams = {};
  delete $("explanation").dataset.serverGrid;
  delete $("explanation").dataset.edgeGrid;
  const cam = edgeResult && edge ? await explain(edge, edgeResult).catch(() => null) : null;  // only now: it is shown
  if (cam) {
    const size = edge.card.input.size;
    cams.edge = { base: imageDataUrl(toImageData(edgeResult.pixels, size)),
      heat: heatmapUrl(cam.values, cam.height, cam.width, size) };
  }
  const explanation = serverResult?.explanation;
  if (explanation?.grid) {
    const grid = explanation.grid;
    $("explanation").dataset.serverGrid = JSON.stringify(grid.flat());
    cams.server = cams.edge
      ? { base: cams.edge.base, heat: heatmapUrl(grid.flat(), grid.length, grid[0].length, edge.card.input.size) }
      : { base: explanation.overlay, heat: "" };
  }
  if (cam) $("explanation").dataset.edgeGrid = JSON.stringify(Array.from(cam.values));
  $("cam-source").querySelector('option[value="server"]').disabled = !cams.server;
  $("cam-source").value = cams.edge ? "edge" : "server";
  showCam();
  await explainAnswer(blob, serverResult, server.value?.answer?.model, edgeResult);
  if (serverResult || edgeResult) {
    showTimings(server.value?.answer, server.value?.roundTripMs, edgeResult);
  }
  revealAnswer();
  document.body.dataset.state = "done";
}

// The "why?" of each panel, which class the CAM explains, tags and anomalies (with the image the model saw).
async function explainAnswer(blob, serverResult, serverModel, edgeResult) {
  const edgeModel = edge && edgeResult ? { name: edge.name, version: edge.version } : null;
  await Promise.all([explainPanel($("server-result"), serverResult, serverModel?.name, serverModel?.version),
    explainPanel($("edge-result"), edgeResult, edgeModel?.name, edgeModel?.version)]);
  const result = serverResult || edgeResult;
  if (!result) return;
  const model = serverResult ? serverModel : edgeModel;
  const card = await cardFor(model.name, model.version);
  $("cam-crop").textContent = card?.input?.size ? t("cam.crop_note", { size: card.input.size }) : "";
  const target = serverResult?.explanation?.class ?? max(result.probabilities);
  const targetName = typeof target === "string" ? labelText(target) : `ImageNet #${target.imagenet_index}`;
  $("cam-target").textContent = t(result.unknown ? "cam.target_unknown" : "cam.target",
    { label: targetName, p: percent(result.probabilities[target] ?? 0) });
  let base = cams.edge?.base;
  if (!base && card) {
    try { base = imageDataUrl(toImageData(modelPixels(await decodePixels(blob), card.input), card.input.size)); } catch { base = ""; }
  }
  if (serverResult || edgeResult) await showDetails(serverResult, edgeResult, base);
}

const max = (probabilities) => Object.entries(probabilities).reduce((a, b) => (b[1] > a[1] ? b : a))[0];

// On a phone the answer is below the upload: bring it into view once it is there.
function revealAnswer() {
  const answer = $("answer");
  if (window.matchMedia("(min-width: 992px)").matches) return;
  const top = answer.getBoundingClientRect().top;
  if (top > window.innerHeight * 0.5 || top < 0) {
    answer.scrollIntoView({ behavior: "smooth", block: "start" });
  }
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
  const shown = $("anomaly-map").classList.toggle("d-none") === false;
  event.target.setAttribute("aria-pressed", String(shown));
  event.target.textContent = t(shown ? "anomaly.toggle_hide" : "anomaly.toggle");
});
document.querySelectorAll(".legend-bar").forEach((img) => { img.src = legendUrl(); });
$("anomaly-heatmap").style.opacity = 0.75;
// A file that is not an image shows no broken preview (the server's answer says what is wrong).
$("preview").addEventListener("error", () => $("preview").classList.add("d-none"));

// Switching language reloads the page: the analysed image goes along (this tab only) and is analysed again.
const CARRIED = "riim.analyze.image";
$("language-switch").addEventListener("click", async (event) => {
  if (!lastImage) return;
  event.preventDefault();
  const { href } = event.currentTarget;
  try {
    const url = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = reject;
      reader.readAsDataURL(lastImage.blob);
    });
    sessionStorage.setItem(CARRIED, JSON.stringify({ url, filename: lastImage.filename }));
  } catch { /* too large for this tab's storage: the new page starts empty */ }
  window.location.href = href;
});
async function restoreImage() {
  const carried = sessionStorage.getItem(CARRIED);
  if (!carried) return;
  sessionStorage.removeItem(CARRIED);
  try {
    const { url, filename } = JSON.parse(carried);
    for (let tries = 0; !edgeLoading && tries < 100; tries += 1) await new Promise((resolve) => { setTimeout(resolve, 100); });
    await edgeLoading;
    analyze(await (await fetch(url)).blob(), filename);
  } catch { /* nothing to restore */ }
}

initModels();
restoreImage();
