// Edge mode: the current version's TF.js GraphModel and card, downloaded once, kept in IndexedDB and run in
// this browser with the TF.js wasm backend (vendored; tf.min.js and tf-backend-wasm.min.js are loaded by
// the page). Preprocessing, the unknown policy and the outputs all come from the card; the rules shared with
// the server (decision with the calibrated OOD score, tags, CAM normalisation) are in contract.js.
import { OOD_FILES, bestIndex, decide, normaliseMap, oodScore, topKTags } from "./contract.js";
import { decodePixels, modelPixels, normalize } from "./preprocess.js";

const tf = globalThis.tf;
const VENDOR = new URL("../vendor/tfjs/", import.meta.url).href;
const DEFAULT_FORMAT = "tfjs";

let backendReady;
/** Select the wasm backend once (binaries from the vendored folder, never a CDN). */
export function wasmBackend() {
  backendReady ??= (async () => {
    tf.wasm.setWasmPaths(VENDOR);
    if (!(await tf.setBackend("wasm"))) throw new Error("wasm backend unavailable");
    await tf.ready();
    return tf.getBackend();
  })();
  return backendReady;
}

const versionUrl = (name, version) =>
  `/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
const storageKey = (name) => `riim.edge.${name}`;

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// --- which model: the student's choice (this browser), else the class default the teacher set ----------
const CHOICE_KEY = "riim.model";
const CHOICES_KEY = "riim.models";

/** The models with a promoted version ({name, version, labels, calibrated}) and the class default; offline,
 * the last list seen. */
export async function modelChoices(fallback) {
  try {
    const info = await getJson("/api/v1/model-info");
    const models = info.models.filter((model) => model.current).map((model) => ({ name: model.name,
      version: model.current, labels: model.card?.labels || [], calibrated: Boolean(model.calibrated) }));
    const choices = { models, classModel: info.class_model || info.default_model };
    localStorage.setItem(CHOICES_KEY, JSON.stringify(choices));
    return { ...choices, online: true };
  } catch {
    const saved = JSON.parse(localStorage.getItem(CHOICES_KEY) || "null");
    return { models: [], classModel: fallback, ...saved, online: false };
  }
}

/** The model this browser uses: its remembered choice if still offered, else the class default. */
export function chosenModel(choices) {
  const mine = localStorage.getItem(CHOICE_KEY);
  if (choices.models.some((model) => model.name === mine)) return mine;
  return choices.models.some((model) => model.name === choices.classModel) || !choices.models.length
    ? choices.classModel : choices.models[0].name;
}

export function rememberModel(name) {
  localStorage.setItem(CHOICE_KEY, name);
}

/** The current version, its card and ImageNet tag names: from the server, or offline the last ones used. */
export async function currentVersion(name) {
  try {
    const info = await getJson("/api/v1/model-info");
    const model = info.models.find((entry) => entry.name === name);
    if (!model || !model.current) throw new Error(`no current version of ${name}`);
    const saved = JSON.parse(localStorage.getItem(storageKey(name)) || "null");
    const card = await getJson(versionUrl(name, model.current));
    let tags = saved?.version === model.current ? saved.tags : null;
    if (!tags && card.tags && card.files.imagenet_labels) {
      tags = await getJson(`${versionUrl(name, model.current)}/files/${card.files.imagenet_labels.path}`);
    }
    const entry = { version: model.current, card, tags };
    localStorage.setItem(storageKey(name), JSON.stringify(entry));
    return { ...entry, online: true };
  } catch (error) {
    const saved = JSON.parse(localStorage.getItem(storageKey(name)) || "null");
    if (!saved) throw error;
    return { ...saved, online: false };
  }
}

// --- the arrays of the calibrated OOD rule: the version's .npz file, kept in IndexedDB for offline use --
const FILES_DB = "riim-edge-files";

function filesStore(mode) {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(FILES_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore("files");
    request.onsuccess = () => resolve(request.result.transaction("files", mode).objectStore("files"));
    request.onerror = () => reject(request.error);
  });
}

const settled = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result);
  request.onerror = () => reject(request.error);
});

/** A version file's bytes: from IndexedDB, else downloaded and stored (older versions' files are dropped). */
async function versionFile(name, version, path) {
  const url = `${versionUrl(name, version)}/files/${path}`;
  const cached = await settled((await filesStore("readonly")).get(url));
  if (cached) return cached;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const data = await response.arrayBuffer();
  const store = await filesStore("readwrite");
  (await settled(store.getAllKeys()))
    .filter((key) => key.startsWith(versionUrl(name, "")) && !key.startsWith(`${versionUrl(name, version)}/`))
    .forEach((key) => store.delete(key));
  await settled(store.put(data, url));
  return data;
}

/** The float32 arrays of an uncompressed .npz (numpy.savez): {name → {data: Float32Array, shape}}. */
export function readNpz(buffer) {
  const view = new DataView(buffer);
  const text = (offset, length) => new TextDecoder().decode(new Uint8Array(buffer, offset, length));
  let end = buffer.byteLength - 22;
  while (view.getUint32(end, true) !== 0x06054b50) end -= 1;  // end of central directory
  const arrays = {};
  for (let i = 0, entry = view.getUint32(end + 16, true); i < view.getUint16(end + 10, true); i += 1) {
    const local = view.getUint32(entry + 42, true);
    const name = text(entry + 46, view.getUint16(entry + 28, true));
    if (view.getUint16(local + 8, true) !== 0) throw new Error(`${name}: compressed .npz`);
    let npy = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const long = view.getUint8(npy + 6) > 1;
    const headerLength = long ? view.getUint32(npy + 8, true) : view.getUint16(npy + 8, true);
    const header = text(npy + (long ? 12 : 10), headerLength);
    if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
      throw new Error(`${name}: not a C-ordered float32 array`);
    }
    const shape = (header.match(/'shape': \(([^)]*)\)/)[1].match(/\d+/g) || []).map(Number);
    npy += (long ? 12 : 10) + headerLength;
    const size = shape.reduce((a, b) => a * b, 1);
    arrays[name.replace(/\.npy$/, "")] = { data: new Float32Array(buffer.slice(npy, npy + size * 4)), shape };
    entry += 46 + view.getUint16(entry + 28, true) + view.getUint16(entry + 30, true) + view.getUint16(entry + 32, true);
  }
  return arrays;
}

/** What the card's OOD rule reads ({stats} or {head}, from ood.npz / head.npz), or null without one. */
export async function oodParameters(name, version, card) {
  const method = card.unknown_policy.ood?.score;
  const files = method && OOD_FILES[method];
  if (!files) return method ? {} : null;
  const [key, role] = files;
  return { [role]: readNpz(await versionFile(name, version, card.files[key].path)) };
}

/** TF.js formats of a card (fp16 "tfjs" first, "tfjs_uint8" = smallest). */
export function tfjsFormats(card) {
  return Object.keys(card.files).filter((fmt) => fmt.startsWith("tfjs")).sort();
}

// Copies of this model's other versions (exactly NAME-vN-format: "shop" never drops "shop-b"'s copies).
async function dropOldCopies(name, keep) {
  const stored = await tf.io.listModels();
  const mine = new RegExp(`^indexeddb://riim-${name}-v\\d+-tfjs[a-z0-9_]*$`);  // names are [a-z0-9_-]
  await Promise.all(Object.keys(stored)
    .filter((key) => mine.test(key) && key !== keep)
    .map((key) => tf.io.removeModel(key)));
}

// A GraphModel (export/tfjs_export.py); a LayersModel is what versions exported before it hold.
async function loadModel(url, options) {
  try {
    return await tf.loadGraphModel(url, options);
  } catch (error) {
    try {
      return await tf.loadLayersModel(url, options);
    } catch {
      throw error;
    }
  }
}

/**
 * Load model NAME's current version in format FORMAT: from IndexedDB when cached, else downloaded once
 * (onProgress receives 0..1) and stored. Returns the edge model used by classify().
 */
export async function loadEdgeModel(name, format = DEFAULT_FORMAT, onProgress = () => {}) {
  const backend = await wasmBackend();
  const { version, card, tags, online } = await currentVersion(name);
  const formats = tfjsFormats(card);
  if (!formats.length) throw Object.assign(new Error("no TF.js export"), { key: "edge.no_tfjs" });
  const fmt = formats.includes(format) ? format : formats[0];
  const key = `indexeddb://riim-${name}-${version}-${fmt}`;
  const started = performance.now();
  let model;
  let source = "cache";
  try {
    model = await loadModel(key);
  } catch {
    source = "network";
    model = await loadModel(`${versionUrl(name, version)}/files/${card.files[fmt].path}`, { onProgress });
    await model.save(key);
    dropOldCopies(name, key).catch(() => {});
  }
  onProgress(1);
  const loadMs = performance.now() - started;
  const edge = { name, version, card, tags, format: fmt, model, source, loadMs, backend, online,
    head: camHead(model, card), ood: await oodParameters(name, version, card) };
  const warm = performance.now();  // compile the wasm kernels and JIT the resampling loops once
  const side = card.input.size * 2;
  modelPixels({ width: side, height: side, data: new Uint8ClampedArray(side * side * 4) }, card.input);
  tf.tidy(() => { run(model, card, tf.zeros([1, card.input.size, card.input.size, 3])); });
  edge.warmupMs = performance.now() - warm;
  return edge;
}

// The card's outputs that the page reads, in the order run() returns them (the embedding for an OOD rule).
const wanted = (card) => [...new Set(["probabilities", "imagenet_probabilities", "feature_map",
  ...(OOD_FILES[card.unknown_policy.ood?.score] ? ["embedding"] : [])]
  .map((key) => card.outputs[key]).filter(Boolean))];

/** Run the GraphModel on an NHWC batch: {output name → tensor} for the card's outputs (signature names). */
export function run(model, card, batch) {
  if (model instanceof tf.LayersModel) {
    const result = [].concat(model.predict(batch));
    return Object.fromEntries(model.outputNames.map((name, i) => [name, result[i]]));
  }
  const names = wanted(card);
  const result = [].concat(model.execute(batch, names));
  return Object.fromEntries(names.map((name, i) => [name, result[i]]));
}

// The last dimension of a signature output of the GraphModel (NaN when the card names no such output).
const lastDim = (model, output) => Number(model.modelSignature.outputs[output]?.tensorShape?.dim?.at(-1)?.size);

// The Dense kernel that reads the pooled feature map (a frozen weight of the GraphModel, dequantized on load):
// its columns give the class activation map weights.
function camHead(model, card) {
  if (model instanceof tf.LayersModel) return layersHead(model, card);
  const channels = lastDim(model, card.outputs.feature_map);
  const kernels = Object.values(model.weights).flat().filter((w) => w.rank === 2 && w.shape[0] === channels);
  const find = (units) => kernels.find((w) => w.shape[1] === units);
  const own = find(card.labels.length);
  if (own) return { kernel: own, mapping: null };
  const imagenet = find(lastDim(model, card.outputs.imagenet_probabilities));
  if (imagenet && card.label_mapping) return { kernel: imagenet, mapping: card.label_mapping };
  return null;
}

// The same for a LayersModel (versions exported before the GraphModel): the Dense layer reading the pooled map.
function layersHead(model, card) {
  const channels = model.getLayer(card.outputs.feature_map).outputShape.at(-1);
  const dense = model.layers.find((layer) => layer.getClassName() === "Dense"
    && layer.kernel && layer.kernel.shape[0] === channels);
  if (!dense) return null;
  if (dense.kernel.shape[1] === card.labels.length) return { kernel: dense.kernel.read(), mapping: null };
  if (card.label_mapping && card.outputs.imagenet_probabilities) {
    return { kernel: dense.kernel.read(), mapping: card.label_mapping };
  }
  return null;
}

// CAM = feature map · class weights, normalised as on the server. For a label that sums ImageNet classes
// the weights are those classes' weights averaged by their probabilities.
function classActivationMap(edge, featureMap, best, imagenet) {
  const { kernel, mapping } = edge.head;
  return tf.tidy(() => {
    let weights;
    if (mapping) {
      const classes = mapping[edge.card.labels[best]];
      const share = tf.tensor1d(classes.map((c) => imagenet[c]));
      weights = tf.gather(kernel, classes, 1).matMul(share.div(share.sum()).expandDims(1));
    } else {
      weights = tf.gather(kernel, [best], 1);
    }
    const [, height, width, channels] = featureMap.shape;
    const map = featureMap.reshape([height * width, channels]).matMul(weights);
    return { values: normaliseMap(map.dataSync()), height, width };
  });
}

/** Classify an image blob in the browser: label, probabilities, OOD score, tags, CAM, pixels, timings. */
export async function classify(edge, blob) {
  const started = performance.now();
  const { card, model } = edge;
  const image = await decodePixels(blob);
  const decoded = performance.now();
  const pixels = modelPixels(image, card.input);
  const input = normalize(pixels, card.input);
  const preprocessed = performance.now();
  const outputs = tf.tidy(() => run(model, card, tf.tensor4d(input, [1, card.input.size, card.input.size, 3])));
  const probabilities = Array.from(outputs[card.outputs.probabilities].dataSync());
  const imagenet = card.outputs.imagenet_probabilities && outputs[card.outputs.imagenet_probabilities]
    ? outputs[card.outputs.imagenet_probabilities].dataSync() : null;
  const rule = card.unknown_policy.ood;
  const score = rule && edge.ood ? oodScore(rule.score, card, outputs[card.outputs.embedding]?.dataSync(),
    probabilities, edge.ood) : null;
  const inferred = performance.now();
  const best = bestIndex(probabilities.slice(0, card.labels.length));
  const [label, unknown] = decide(card, probabilities, score);
  const cam = edge.head ? classActivationMap(edge, outputs[card.outputs.feature_map], best, imagenet) : null;
  tf.dispose(Object.values(outputs));
  const done = performance.now();
  let tags = null;
  if (imagenet && edge.tags && card.tags) tags = topKTags(card, imagenet, edge.tags);
  return {
    label, unknown, confidence: probabilities[best], ood_score: score,
    probabilities: Object.fromEntries(card.labels.map((name, i) => [name, probabilities[i]])),
    tags, cam, pixels,
    timings: { decode_ms: decoded - started, preprocess_ms: preprocessed - decoded,
      inference_ms: inferred - preprocessed, cam_ms: done - inferred, total_ms: done - started },
  };
}
