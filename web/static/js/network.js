// Network page: the layers of the current model (read from its TF.js export, the same file the Analyze
// page runs) grouped into parts, each explained in one sentence, and the feature maps an image produces.
import { t } from "./i18n.js";
import { loadEdgeModel } from "./edge.js";
import { decodePixels, modelPixels, normalize } from "./preprocess.js";
import { element, table } from "./render.js";

const tf = globalThis.tf;
const $ = (id) => document.getElementById(id);
const TILES = 16;
let edge = null;

/** The part a layer belongs to: stem, blockN, top or head (names given by training/backbone.py). */
function partOf(name) {
  const block = name.match(/^(block\d+)_/);
  if (block) return block[1];
  if (name === "image" || name.startsWith("stem_")) return "stem";
  if (name.startsWith("top_") && name !== "top_dropout") return "top";
  return "head";
}

function partSentence(part) {
  const kind = part.startsWith("block") ? "block" : part;
  return t(`network.part_${kind}`, { n: part.replace("block", "") });
}

const shape = (layer) => JSON.stringify(layer.outputShape).replaceAll("null", "N");
const typeText = (name) => (t(`network.layer_${name}`) === `network.layer_${name}` ? "" : t(`network.layer_${name}`));

function parts(model) {
  const grouped = new Map();
  model.layers.forEach((layer) => {
    const part = partOf(layer.name);
    if (!grouped.has(part)) grouped.set(part, []);
    grouped.get(part).push(layer);
  });
  return grouped;
}

function drawGraph(model) {
  const grouped = parts(model);
  const total = model.countParams();
  $("network-summary").textContent = t("network.summary", {
    model: `${edge.name} ${edge.version}`, layers: model.layers.length, params: total.toLocaleString(),
    size: edge.card.input.size });
  $("network-graph").replaceChildren(...[...grouped].map(([part, layers]) => {
    const params = layers.reduce((sum, layer) => sum + layer.countParams(), 0);
    const last = layers.at(-1);
    const summary = element("summary", {},
      element("strong", { text: part }), ` → ${shape(last)} · ${t("network.params", { n: params.toLocaleString() })}`);
    const rows = [[t("network.layer"), t("network.type"), t("network.shape"), t("network.params_column")],
      ...layers.map((layer) => [layer.name, layer.getClassName(), shape(layer), layer.countParams().toLocaleString()])];
    const types = [...new Set(layers.map((layer) => layer.getClassName()))].map(typeText).filter(Boolean);
    return element("details", { className: "card card-body mb-2 py-2", attrs: { "data-part": part } }, summary,
      element("p", { className: "small mb-1", text: partSentence(part) }),
      element("ul", { className: "small mb-1" }, ...types.map((sentence) => element("li", { text: sentence }))),
      table(rows, "table table-sm layer mb-0"));
  }));
  $("network-part").replaceChildren(...[...grouped]
    .filter(([, layers]) => layers.at(-1).outputShape.length === 4)
    .map(([part, layers]) => element("option", { text: `${part} (${shape(layers.at(-1))})`, attrs: { value: layers.at(-1).name } })));
}

function drawTile(values, height, width) {
  const canvas = element("canvas", { attrs: { role: "img" } });
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  let low = Infinity;
  let high = -Infinity;
  values.forEach((v) => { low = Math.min(low, v); high = Math.max(high, v); });
  values.forEach((v, i) => {
    const grey = high > low ? Math.round(((v - low) / (high - low)) * 255) : 0;
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

async function showMaps() {
  const file = $("network-image").files[0];
  const layerName = $("network-part").value;
  if (!file || !edge || !layerName) return;
  const { card, model } = edge;
  const input = normalize(modelPixels(await decodePixels(file), card.input), card.input);
  const probe = tf.model({ inputs: model.inputs, outputs: model.getLayer(layerName).output });
  const maps = tf.tidy(() => probe.predict(tf.tensor4d(input, [1, card.input.size, card.input.size, 3])));
  const [, height, width, channels] = maps.shape;
  const data = await maps.data();
  maps.dispose();
  const tiles = [];
  for (let c = 0; c < Math.min(TILES, channels); c += 1) {
    const values = new Float32Array(height * width);
    for (let i = 0; i < height * width; i += 1) values[i] = data[i * channels + c];
    const tile = drawTile(values, height, width);
    tile.setAttribute("aria-label", t("network.tile", { channel: c, layer: layerName }));
    tiles.push(tile);
  }
  $("maps-caption").textContent = t("network.maps_caption", { shown: tiles.length, channels, height, width, layer: layerName });
  $("feature-tiles").replaceChildren(...tiles);
  document.body.dataset.state = "done";
}

$("network-image").addEventListener("change", showMaps);
$("network-part").addEventListener("change", showMaps);

try {
  edge = await loadEdgeModel($("main").dataset.model);
  $("network-status").textContent = "";
  drawGraph(edge.model);
} catch (error) {
  $("network-status").textContent = t("edge.unavailable", { reason: error.message });
}
