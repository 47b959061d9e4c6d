// Page /digits: draw (mouse, touch, pen), upload a photo or capture the webcam; the picture becomes the
// networks' 28×28 input step by step (digits_preprocess.js, the same steps as the server), then the MLP and
// the CNN answer on the server (ONNX Runtime) and in this browser (TF.js wasm), side by side.
import { wasmBackend } from "./edge.js";
import { preprocess, SIZE } from "./digits_preprocess.js";
import { t } from "./i18n.js";
import { api, element, formatNumber, ms, percent } from "./render.js";

const tf = globalThis.tf;
const root = document.getElementById("digits");
const KINDS = ["mlp", "cnn"];
const NAMES = { mlp: root.dataset.mlp, cnn: root.dataset.cnn };
const STEPS = ["grey", "ink", "mask", "crop", "scaled", "input"];
const byId = (id) => document.getElementById(id);
const status = byId("digit-status");
const state = { models: {}, strokes: [], busy: null };

// --- the models: card (layers) from the API, TF.js GraphModel from the version's files ---------------
async function loadModel(kind) {
  const info = await api(`/api/v1/models/${NAMES[kind]}`);
  const card = info.versions.find((version) => version.version === info.current);
  if (!card) throw new Error(t("digits.not_trained"));
  const url = `/api/v1/models/${NAMES[kind]}/versions/${info.current}/files/${card.files.tfjs.path}`;
  const model = await tf.loadGraphModel(url);
  return { card, model, version: info.current };
}

/** One network in this browser: probabilities and the layer outputs of the card, with the call's time. */
function runEdge(kind, input) {
  const { card, model } = state.models[kind];
  const names = [card.outputs.probabilities, ...card.outputs.layers];
  const started = performance.now();
  const outputs = tf.tidy(() => {
    const tensors = model.execute(tf.tensor(input, [1, SIZE, SIZE]), names);
    return names.map((name, i) => ({ name, shape: tensors[i].shape.slice(1), data: tensors[i].dataSync() }));
  });
  const elapsed = performance.now() - started;
  return { probabilities: Array.from(outputs[0].data), layers: outputs.slice(1), ms: elapsed };
}

const topOf = (probabilities, count = 3) => probabilities.map((p, digit) => ({ digit: String(digit), probability: p }))
  .sort((a, b) => b.probability - a.probability).slice(0, count);

// --- drawing ----------------------------------------------------------------------------------------
const canvas = byId("digit-canvas");
const context = canvas.getContext("2d");

function repaint() {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.strokeStyle = "#000";
  context.lineCap = "round";
  context.lineJoin = "round";
  context.lineWidth = 18;
  for (const stroke of state.strokes) {
    context.beginPath();
    stroke.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    if (stroke.length === 1) context.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    context.stroke();
  }
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * (canvas.width / box.width), (event.clientY - box.top) * (canvas.height / box.height)];
}

let drawing = null;
canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  drawing = [point(event)];
  state.strokes.push(drawing);
  repaint();
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  drawing.push(point(event));
  repaint();
});
const endStroke = () => {
  if (!drawing) return;
  drawing = null;
  analyseCanvas();
};
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
byId("digit-clear").addEventListener("click", () => { state.strokes = []; repaint(); analyseCanvas(); });
byId("digit-undo").addEventListener("click", () => { state.strokes.pop(); repaint(); analyseCanvas(); });

function analyseCanvas() {
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const upload = () => new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  analyse(pixels, upload);
}

// --- photo and webcam -------------------------------------------------------------------------------
function pixelsOf(source, width, height) {
  const scratch = element("canvas");
  scratch.width = width;
  scratch.height = height;
  const scratchContext = scratch.getContext("2d");
  scratchContext.fillStyle = "#fff";  // transparency on white, as the server decodes it
  scratchContext.fillRect(0, 0, width, height);
  scratchContext.drawImage(source, 0, 0, width, height);
  return { pixels: scratchContext.getImageData(0, 0, width, height), scratch };
}

byId("digit-photo").addEventListener("change", async (event) => {
  const [file] = event.target.files;
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const { pixels } = pixelsOf(bitmap, bitmap.width, bitmap.height);
    analyse(pixels, async () => file);
  } catch {
    showMessage(t("digits.not_an_image"));
  }
});

const video = byId("camera");
byId("camera-start").addEventListener("click", async () => {
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    video.classList.remove("d-none");
    byId("camera-capture").classList.remove("d-none");
    byId("camera-status").textContent = t("digits.camera_hint");
  } catch {
    byId("camera-status").textContent = t("digits.camera_denied");
  }
});
byId("camera-capture").addEventListener("click", () => {
  if (!video.videoWidth) return;
  const { pixels, scratch } = pixelsOf(video, video.videoWidth, video.videoHeight);
  analyse(pixels, () => new Promise((resolve) => scratch.toBlob(resolve, "image/png")));
});

// --- the steps strip ---------------------------------------------------------------------------------
/** A grey image (values 0–1) on a square black canvas, centred, so crops keep their shape when enlarged. */
function stepCanvas({ data, height, width }) {
  const square = element("canvas", { className: "digit-step-image" });
  square.width = square.height = Math.max(height, width);
  const rgba = new Uint8ClampedArray(width * height * 4);
  data.forEach((value, i) => { rgba.fill(Math.round(value * 255), i * 4, i * 4 + 3); rgba[i * 4 + 3] = 255; });
  const squareContext = square.getContext("2d");
  squareContext.fillRect(0, 0, square.width, square.height);
  squareContext.putImageData(new ImageData(rgba, width, height), (square.width - width) >> 1, (square.height - height) >> 1);
  return square;
}

function showSteps(result) {
  const list = byId("digit-steps");
  list.replaceChildren(...STEPS.filter((step) => result.steps[step]).map((step) => {
    const picture = result.steps[step];
    return element("li", { className: "digit-step", attrs: { "data-step": step } }, stepCanvas(picture),
      element("span", { className: "small fw-semibold", text: t(`digits.step.${step}`) }),
      element("span", { className: "small text-body-secondary", text: `${picture.width}×${picture.height} · ${t(`digits.step.${step}_why`)}` }));
  }));
}

function showMessage(text) {
  const message = byId("digit-message");
  message.textContent = text;
  message.classList.toggle("d-none", !text);
}

// --- answers ----------------------------------------------------------------------------------------
function answerCard(kind, edge, server) {
  const column = (title, result, where) => {
    const rows = result.top.map(({ digit, probability }, i) => {
      const inner = element("div", { className: `progress-bar${i ? " bg-secondary" : ""}` });
      inner.style.width = `${probability * 100}%`;
      return element("div", { className: "mb-1" }, element("div", { className: "small", text: `${digit} — ${percent(probability)}` }),
        element("div", { className: "progress probability-bar", attrs: { role: "progressbar", "aria-label": `${digit}`,
          "aria-valuenow": Math.round(probability * 100), "aria-valuemin": "0", "aria-valuemax": "100" } }, inner));
    });
    return element("div", { className: "col-6", attrs: { "data-where": where } },
      element("div", { className: "small text-body-secondary", text: title }),
      element("div", { className: "display-6 digit-answer", text: result.top[0].digit, attrs: { "data-digit": result.top[0].digit } }),
      ...rows, element("div", { className: "small text-body-secondary", text: t("digits.compute", { ms: ms(result.ms) }) }));
  };
  const agree = server && server.top[0].digit === edge.top[0].digit;
  return element("div", { className: "col-md-6", attrs: { "data-kind": kind } },
    element("div", { className: "card card-body h-100" },
      element("h3", { className: "h6", text: t(`digits.model.${kind}`) }),
      element("div", { className: "row g-2" },
        server ? column(t("digits.server"), server, "server") : element("div", { className: "col-6 small", text: t("digits.server_waiting") }),
        column(t("digits.browser"), edge, "browser")),
      element("p", { className: `small mb-0 mt-1 ${agree ? "text-success" : "text-body-secondary"}`,
        text: server ? t(agree ? "digits.agree" : "digits.disagree") : "" })));
}

function showAnswers(edge, server) {
  byId("digit-answers").replaceChildren(...KINDS.filter((kind) => edge[kind]).map((kind) => answerCard(kind, edge[kind], server?.[kind])));
}

// --- layers -----------------------------------------------------------------------------------------
function layerTable(card) {
  const rows = card.architecture.layers.map((layer) => element("tr", {},
    element("td", {}, element("code", { text: layer.name })), element("td", { text: layer.type }),
    element("td", { text: layer.output_shape.join("×") }), element("td", { className: "text-end", text: formatNumber(layer.parameters) })));
  return element("div", { className: "table-responsive" }, element("table", { className: "table table-sm small mb-1" },
    element("thead", {}, element("tr", {}, ...["digits.layer_name", "digits.layer_type", "digits.layer_shape", "digits.layer_params"]
      .map((key) => element("th", { text: t(key), attrs: { scope: "col" } })))),
    element("tbody", {}, ...rows)));
}

function mapTiles({ name, shape, data }, count) {
  const [height, width, channels] = shape;
  const tiles = [];
  for (let channel = 0; channel < Math.min(count, channels); channel += 1) {
    const values = new Float64Array(height * width);
    let peak = 0;
    for (let i = 0; i < height * width; i += 1) { values[i] = data[i * channels + channel]; peak = Math.max(peak, values[i]); }
    tiles.push(stepCanvas({ data: peak > 0 ? values.map((v) => v / peak) : values, height, width }));
  }
  return element("figure", { className: "mb-2" },
    element("figcaption", { className: "small", text: t("digits.maps_caption", { name, count: Math.min(count, channels), channels, size: `${height}×${width}` }) }),
    element("div", { className: "digit-maps" }, ...tiles));
}

function activationBars({ name, shape, data }) {
  const values = Array.from(data);
  const peak = Math.max(...values, 1e-9);
  const bars = element("div", { className: "digit-activations" }, ...values.map((value) => {
    const barElement = element("span");
    barElement.style.height = `${(value / peak) * 100}%`;
    return barElement;
  }));
  const active = values.filter((value) => value > 0).length;
  return element("figure", { className: "mb-2" },
    element("figcaption", { className: "small", text: t("digits.activations_caption", { name, active, total: shape[0] }) }), bars);
}

function showLayers(edge) {
  byId("digit-layers").replaceChildren(...KINDS.filter((kind) => state.models[kind]).map((kind) => {
    const { card, version } = state.models[kind];
    const outputs = edge?.[kind]?.layers || [];
    const pictures = outputs.map((output) => (output.shape.length === 3 ? mapTiles(output, output.shape[2] > 32 ? 16 : 32) : activationBars(output)));
    return element("div", { className: "col-lg-6", attrs: { "data-layers": kind } },
      element("h3", { className: "h6", text: `${t(`digits.model.${kind}`)} · ${NAMES[kind]}:${version}` }),
      element("p", { className: "small mb-1", text: t("digits.params_total", { count: formatNumber(card.architecture.parameters),
        accuracy: percent(card.metrics.test.accuracy), images: formatNumber(card.metrics.test.images) }) }),
      layerTable(card), ...(pictures.length ? pictures : [element("p", { className: "small text-body-secondary", text: t("digits.layers_wait") })]));
  }));
}

// --- one picture through everything -----------------------------------------------------------------
async function serverAnswers(upload) {
  const form = new FormData();
  form.append("image", await upload(), "digit.png");
  const body = await api("/api/v1/digits/predict?model=both", { method: "POST", body: form });
  if (body.preprocessing.refused) throw new Error(body.preprocessing.refused.message);
  return Object.fromEntries(body.results.map((result) => [result.kind, { top: result.top, ms: result.inference_ms }]));
}

async function analyse(pixels, upload) {
  const run = Symbol("run");
  state.busy = run;
  const result = preprocess(pixels.data, pixels.width, pixels.height, 4);
  showSteps(result);
  root.dataset.reason = result.reason || "";
  if (result.reason) {
    showMessage(t(`digits.reason.${result.reason}`));
    byId("digit-answers").replaceChildren();
    status.textContent = t("digits.no_answer");
    root.dataset.state = "refused";
    return;
  }
  showMessage("");
  root.dataset.state = "working";
  const edge = {};
  for (const kind of KINDS.filter((name) => state.models[name])) {
    const out = runEdge(kind, result.input);
    edge[kind] = { ...out, top: topOf(out.probabilities) };
  }
  showAnswers(edge, null);
  showLayers(edge);
  status.textContent = t("digits.asking_server");
  try {
    const server = await serverAnswers(upload);
    if (state.busy !== run) return;
    showAnswers(edge, server);
    status.textContent = t("digits.done");
  } catch (error) {
    if (state.busy !== run) return;
    status.textContent = `${t("digits.server_failed")} ${error.message}`;
  }
  root.dataset.state = "done";
}

async function start() {
  repaint();
  try {
    await wasmBackend();
    for (const kind of KINDS) state.models[kind] = await loadModel(kind);
    status.textContent = t("digits.ready");
    showLayers(null);
    root.dataset.state = "ready";
  } catch (error) {
    status.textContent = `${t("digits.not_ready")} ${error.message}`;
    root.dataset.state = "error";
  }
}

start();
