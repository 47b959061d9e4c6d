// Network page: the layers of the current model (read from the frozen graph of its TF.js GraphModel, the
// same file the Analyze page runs) grouped into parts, each explained in one sentence, and the feature maps
// an image produces.
import { colourise, selectTiles, tile } from "./contract.js";
import { t } from "./i18n.js";
import { chosenModel, loadEdgeModel, modelChoices, rememberModel } from "./edge.js";
import { decodePixels, modelPixels, normalize, toImageData } from "./preprocess.js";
import { element, formatNumber, imageDataUrl, labelText, table, why } from "./render.js";

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

const shape = (layer) => JSON.stringify(layer.shape).replaceAll("null", "N").replaceAll(",", ", ");
// A layer name such as block3_project_bn in words: its block, its step and its operation (training/backbone.py names).
const NAME_PARTS = ["expand", "dwconv", "se", "project", "bn", "activation", "add", "drop", "conv", "pad", "relu", "pool", "dense", "dropout", "probabilities", "squeeze", "reduce"];
function nameText(name) {
  const parts = name.split("_").flatMap((part) => {
    const block = part.match(/^block(\d+)([a-z]?)$/);
    if (block) return [t("network.name_block", { n: block[1] })];
    return NAME_PARTS.includes(part) ? [t(`network.name_${part}`)] : [];
  });
  return parts.join(" · ");
}
function shapeText(layer) {
  const dims = layer.shape.slice(1);
  if (dims.length === 3) return t("network.shape_map", { h: dims[0], w: dims[1], c: formatNumber(dims[2]) });
  if (dims.length === 1) return t("network.shape_vector", { n: formatNumber(dims[0]) });
  return "";
}
const typeText = (name) => (t(`network.layer_${name}`) === `network.layer_${name}` ? "" : t(`network.layer_${name}`));
// Ops of the frozen graph → the Keras layer kind they come from (BatchNorm is folded into the convolutions).
const KIND = { Conv2D: "Conv2D", _FusedConv2D: "Conv2D", DepthwiseConv2dNative: "DepthwiseConv2D",
  FusedDepthwiseConv2dNative: "DepthwiseConv2D", FusedBatchNormV3: "BatchNormalization", Relu6: "ReLU",
  Add: "Add", AddV2: "Add", Mean: "GlobalAveragePooling2D", MatMul: "Dense", _FusedMatMul: "Dense",
  BiasAdd: "Dense", Softmax: "Softmax" };
const sizeOf = (tensor) => tensor.shape.reduce((a, b) => a * b, 1);

/**
 * The layers of the GraphModel, read from its frozen graph: one entry per Keras layer name found in the node
 * names (``StatefulPartitionedCall/<model>/<layer>/<op>``; fused ops carry the name of their last layer), its
 * last node, op kinds, output shape (one run on a blank image) and parameters (the frozen weights its nodes read).
 */
function graphLayers(model, card) {
  const nodes = model.artifacts.modelTopology.node;
  const weights = model.weights;
  const layers = new Map();
  nodes.forEach((node) => {
    const path = node.name.split("/");
    if (node.op === "Const" || node.op === "Placeholder" || path.length < 3) return;
    const name = path[2];
    if (!layers.has(name)) layers.set(name, { name, node: node.name, kinds: [], params: 0 });
    const layer = layers.get(name);
    layer.node = node.name;
    if (KIND[node.op] && !layer.kinds.includes(KIND[node.op])) layer.kinds.push(KIND[node.op]);
    (node.input || []).forEach((input) => {  // the frozen weights this node reads (BatchNorm folded in)
      (weights[input.split(":")[0]] || []).forEach((tensor) => { layer.params += sizeOf(tensor); });
    });
  });
  const list = [...layers.values()];
  const outputs = tf.tidy(() => [].concat(model.execute(tf.zeros([1, card.input.size, card.input.size, 3]),
    list.map((layer) => layer.node))));
  list.forEach((layer, i) => { layer.shape = [null, ...outputs[i].shape.slice(1)]; });
  tf.dispose(outputs);
  return list;
}

function parts(layers) {
  const grouped = new Map();
  layers.forEach((layer) => {
    const part = partOf(layer.name);
    if (!grouped.has(part)) grouped.set(part, []);
    grouped.get(part).push(layer);
  });
  return grouped;
}

function drawGraph(layers) {
  const grouped = parts(layers);
  const total = layers.reduce((sum, layer) => sum + layer.params, 0);
  $("network-summary").textContent = t("network.summary", {
    model: `${edge.name} ${edge.version}`, layers: formatNumber(layers.length), params: formatNumber(total),
    size: edge.card.input.size });
  $("network-graph").replaceChildren(...[...grouped].map(([part, members]) => {
    const params = members.reduce((sum, layer) => sum + layer.params, 0);
    const last = members.at(-1);
    const summary = element("summary", {},
      element("strong", { text: part }), ` → ${shape(last)} · ${t("network.params", { n: formatNumber(params) })}`);
    const rows = [[t("network.layer"), t("network.type"), t("network.shape"), t("network.params_column")],
      ...members.map((layer) => [element("span", { attrs: { title: nameText(layer.name) } }, element("code", { text: layer.name }),
        element("span", { className: "d-block small text-body-secondary", text: nameText(layer.name) })),
      layer.kinds.join(" + "), element("span", { attrs: { title: shapeText(layer) } }, shape(layer),
        element("span", { className: "d-block small text-body-secondary", text: shapeText(layer) })), formatNumber(layer.params)])];
    const types = [...new Set(members.flatMap((layer) => layer.kinds))].map(typeText).filter(Boolean);
    return element("details", { className: "card card-body mb-2 py-2", attrs: { "data-part": part } }, summary,
      element("p", { className: "small mb-1", text: partSentence(part) }),
      element("ul", { className: "small mb-1" }, ...types.map((sentence) => element("li", { text: sentence }))),
      element("div", { className: "table-responsive" }, table(rows, "table table-sm layer mb-0")));
  }));
  $("network-part").replaceChildren(...[...grouped]
    .filter(([, members]) => members.at(-1).shape.length === 4)
    .map(([part, members]) => element("option", { text: `${part} (${shape(members.at(-1))})`,
      attrs: { value: members.at(-1).node, "data-layer": members.at(-1).name } })));
}

// One channel as the server draws it (contract.js): normalised, enlarged, in the shared colour map.
function drawTile(values, height, width) {
  const enlarged = tile(values, height, width);
  const canvas = element("canvas", { attrs: { role: "img" } });
  canvas.width = enlarged.width;
  canvas.height = enlarged.height;
  canvas.getContext("2d").putImageData(new ImageData(colourise(enlarged.values), enlarged.width, enlarged.height), 0, 0);
  return canvas;
}

async function showMaps() {
  const file = $("network-image").files[0];
  const option = $("network-part").selectedOptions[0];
  if (!file || !edge || !option) return;
  const layerName = option.dataset.layer;
  const { card, model } = edge;
  const pixels = modelPixels(await decodePixels(file), card.input);
  $("network-input").src = imageDataUrl(toImageData(pixels, card.input.size));
  $("network-input").classList.remove("d-none");
  const input = normalize(pixels, card.input);
  const maps = tf.tidy(() => model.execute(tf.tensor4d(input, [1, card.input.size, card.input.size, 3]), option.value));
  const [, height, width, channels] = maps.shape;
  const data = await maps.data();
  maps.dispose();
  const area = height * width;
  const planar = new Float32Array(data.length);  // NHWC → (C, H, W), the layout of the server's maps
  for (let i = 0; i < area; i += 1) for (let c = 0; c < channels; c += 1) planar[c * area + i] = data[i * channels + c];
  const tiles = selectTiles(planar, channels, height, width, TILES).map(({ channel }) => {
    const canvas = drawTile(planar.subarray(channel * area, (channel + 1) * area), height, width);
    canvas.setAttribute("aria-label", t("network.tile", { channel, layer: layerName }));
    return canvas;
  });
  $("maps-caption").textContent = t("network.maps_caption", { shown: tiles.length, channels: formatNumber(channels), height, width, layer: layerName,
    size: card.input.size });
  $("feature-tiles").replaceChildren(...tiles);
  document.body.dataset.state = "done";
}

$("network-image").addEventListener("change", showMaps);
$("network-part").addEventListener("change", showMaps);

// The model: this browser's choice (shared with Analyze), else the class default.
let modelName = $("model-select").dataset.classModel || $("main").dataset.model;

async function showModel(name) {
  edge = null;
  $("network-status").textContent = t("edge.loading");
  $("network-graph").replaceChildren();
  $("network-summary").textContent = "";
  try {
    const loaded = await loadEdgeModel(name);
    if (name !== modelName) return;
    edge = loaded;
    $("network-status").textContent = "";
    drawGraph(graphLayers(edge.model, edge.card));
    await showMaps();
  } catch (error) {
    if (name === modelName) $("network-status").textContent = t("edge.unavailable", { reason: error.key ? t(error.key) : error.message });
  }
}

const choices = await modelChoices(modelName);
modelName = chosenModel(choices);
if (choices.models.length) {
  $("model-select").replaceChildren(...choices.models.map((model) => element("option", { attrs: { value: model.name },
    text: t("model.option", { name: model.name, version: model.version, labels: model.labels.map(labelText).join(", ") })
      + (model.name === choices.classModel ? t("model.class_default") : "") })));
}
$("model-select").value = modelName;
$("model-select").addEventListener("change", (event) => {
  modelName = event.target.value;
  rememberModel(modelName);
  showModel(modelName);
});
await showModel(modelName);
