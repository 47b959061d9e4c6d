// Edge mode: the current version's TF.js GraphModel and card, downloaded once (streamed, with progress),
// kept in IndexedDB and run in this browser with the TF.js wasm backend (vendored; tf.min.js and
// tf-backend-wasm.min.js are loaded by the page, or TF.js core, converter and wasm by edge-worker.js in a Web
// Worker: loadWorkerModel keeps the page responsive). Preprocessing, the unknown policy and the outputs all
// come from the card; the rules shared with the server (decision with the calibrated OOD score, tags, CAM
// normalisation) are in contract.js.
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

// One look-up serves every caller of the same few seconds (a page start asks for model-info several times).
const recent = new Map();
function recently(key, make) {
  const hit = recent.get(key);
  if (hit && performance.now() - hit.at < 3000) return hit.promise;
  const promise = make();
  recent.set(key, { at: performance.now(), promise });
  promise.catch(() => recent.delete(key));
  return promise;
}
const modelInfo = () => recently("model-info", () => getJson("/api/v1/model-info"));

// --- which model: the student's choice (this browser), else the class default the teacher set ----------
const CHOICE_KEY = "riim.model";
const CHOICES_KEY = "riim.models";

/** The models with a promoted version ({name, version, labels, calibrated}) and the class default; offline,
 * the last list seen. */
export async function modelChoices(fallback) {
  try {
    const info = await modelInfo();
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
export function currentVersion(name) {
  return recently(`version ${name}`, () => lookUpVersion(name));
}

async function lookUpVersion(name) {
  try {
    const info = await modelInfo();
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

/** The TF.js format loaded for FORMAT: itself when the card has it, else the card's first. */
export function servedFormat(card, format = DEFAULT_FORMAT) {
  const formats = tfjsFormats(card);
  if (!formats.length) throw Object.assign(new Error("no TF.js export"), { key: "edge.no_tfjs" });
  return formats.includes(format) ? format : formats[0];
}

// Copies of this model's other versions (exactly NAME-vN-format: "shop" never drops "shop-b"'s copies).
async function dropOldCopies(name, keep) {
  const stored = await tf.io.listModels();
  const mine = new RegExp(`^indexeddb://riim-${name}-v\\d+-tfjs[a-z0-9_]*$`);  // names are [a-z0-9_-]
  await Promise.all(Object.keys(stored)
    .filter((key) => mine.test(key) && key !== keep)
    .map((key) => tf.io.removeModel(key)));
}

// A GraphModel (export/tfjs_export.py) from its artifacts; a LayersModel is what versions exported before it
// hold: TF.js layers is then loaded (the Web Worker starts with TF.js core, converter and wasm only).
async function modelFrom(artifacts) {
  if (artifacts.format === "graph-model" || Array.isArray(artifacts.modelTopology?.node)) {
    return tf.loadGraphModel(tf.io.fromMemory(artifacts));
  }
  if (!tf.loadLayersModel) await import("../vendor/tfjs/tf-layers.es2017.min.js");
  return tf.loadLayersModel(tf.io.fromMemory(artifacts));
}

const isLayersModel = (model) => Boolean(tf.LayersModel) && model instanceof tf.LayersModel;

// Every chunk of URL as it arrives (COUNT receives its size): the bytes of the whole answer.
async function streamed(url, count) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const chunks = [];
  const reader = response.body.getReader();
  for (let part = await reader.read(); !part.done; part = await reader.read()) {
    chunks.push(part.value);
    count(part.value.byteLength);
  }
  return concat(chunks);
}

function concat(parts) {
  const whole = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  parts.reduce((offset, part) => { whole.set(part, offset); return offset + part.byteLength; }, 0);
  return whole;
}

// The model files (model.json + weight shards, the card's `bytes` in all) as TF.js model artifacts, streamed
// with onProgress(fraction, received bytes, total bytes).
async function download(url, total, onProgress) {
  let received = 0;
  const count = (bytes) => { received += bytes; onProgress(Math.min(received / total, 0.99), received, total); };
  const json = JSON.parse(new TextDecoder().decode(await streamed(url, count)));
  const base = new URL(url, globalThis.location.href);
  const shards = await Promise.all(json.weightsManifest.flatMap((group) => group.paths)
    .map((path) => streamed(new URL(path, base).href, count)));
  const weights = concat(shards).buffer;
  return tf.io.getModelArtifactsForJSON(json,
    async (manifest) => [manifest.flatMap((group) => group.weights), weights]);
}

/**
 * Load model NAME's current version in format FORMAT: from IndexedDB when cached, else downloaded once
 * (onProgress receives 0..1, bytes received, bytes in all) and stored. Returns the edge model used by classify().
 */
export async function loadEdgeModel(name, format = DEFAULT_FORMAT, onProgress = () => {}) {
  return openModel({ name, ...await currentVersion(name) }, format, onProgress);
}

/** loadEdgeModel for a version already known ({name, version, card, tags, online}): also runs in a worker. */
export async function openModel({ name, version, card, tags, online }, format = DEFAULT_FORMAT, onProgress = () => {}) {
  const backend = await wasmBackend();
  const fmt = servedFormat(card, format);
  const key = `indexeddb://riim-${name}-${version}-${fmt}`;
  const started = performance.now();
  const ood = oodParameters(name, version, card);  // fetched or read beside the model (its error is thrown below)
  ood.catch(() => {});
  let model;
  let source = "cache";
  try {
    model = await modelFrom(await tf.io.getLoadHandlers(key)[0].load());  // the IndexedDB copy, if any
  } catch {
    source = "network";
    model = await modelFrom(await download(`${versionUrl(name, version)}/files/${card.files[fmt].path}`,
      card.files[fmt].bytes, onProgress));
  }
  onProgress(1, card.files[fmt].bytes, card.files[fmt].bytes);
  const loadMs = performance.now() - started;
  // Kept for the next visit: IndexedDB writes while the kernels compile below and the first answers run.
  if (source === "network") model.save(key).then(() => dropOldCopies(name, key)).catch(() => {});
  const warm = performance.now();  // compile the wasm kernels and JIT the resampling loops once
  const side = card.input.size * 2;
  modelPixels({ width: side, height: side, data: new Uint8ClampedArray(side * side * 4) }, card.input);
  tf.tidy(() => { run(model, card, tf.zeros([1, card.input.size, card.input.size, 3])); });
  const warmupMs = performance.now() - warm;
  return { name, version, card, tags, format: fmt, model, source, loadMs, backend, online, warmupMs,
    head: camHead(model, card), ood: await ood };
}

// The card's outputs that the page reads, in the order run() returns them (the embedding for an OOD rule).
const wanted = (card) => [...new Set(["probabilities", "imagenet_probabilities", "feature_map",
  ...(OOD_FILES[card.unknown_policy.ood?.score] ? ["embedding"] : [])]
  .map((key) => card.outputs[key]).filter(Boolean))];

/** Run the GraphModel on an NHWC batch: {output name → tensor} for the card's outputs (signature names). */
export function run(model, card, batch) {
  if (isLayersModel(model)) {
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
  if (isLayersModel(model)) return layersHead(model, card);
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
// (Functional ops only: the Web Worker's TF.js core has no chained tensor methods.)
function classActivationMap(edge, { featureMap, shape, best, imagenet }) {
  const { kernel, mapping } = edge.head;
  return tf.tidy(() => {
    let weights;
    if (mapping) {
      const classes = mapping[edge.card.labels[best]];
      const share = tf.tensor1d(classes.map((c) => imagenet[c]));
      weights = tf.matMul(tf.gather(kernel, classes, 1), tf.expandDims(tf.div(share, tf.sum(share)), 1));
    } else {
      weights = tf.gather(kernel, [best], 1);
    }
    const [, height, width, channels] = shape;
    const map = tf.matMul(tf.tensor2d(featureMap, [height * width, channels]), weights);
    return { values: normaliseMap(map.dataSync()), height, width };
  });
}

/** The class activation map of RESULT (the last answer of EDGE), computed only when it is shown; null when
 * the model has no CAM head or another image was classified since. */
export async function explain(edge, result) {
  if (edge.worker) return edge.worker.call({ type: "explain", key: edge.key, ticket: result.ticket });
  return edge.last?.ticket === result.ticket && edge.head ? classActivationMap(edge, edge.last) : null;
}

let tickets = 0;

/**
 * Classify an image in the browser (a Blob, or decoded RGBA pixels {width, height, data} such as a canvas's
 * ImageData): label, probabilities, OOD score, tags, the model's pixels, timings. The CAM is explain()'s.
 */
export async function classify(edge, source) {
  if (edge.worker) {
    const message = { type: "classify", key: edge.key, source };
    if (source instanceof Blob) return edge.worker.call(message);
    const { width, height, data } = source;  // the pixels move to the worker (transferred, not copied)
    return edge.worker.call({ ...message, source: { width, height, data } }, [data.buffer]);
  }
  const started = performance.now();
  const { card, model } = edge;
  const image = source instanceof Blob ? await decodePixels(source) : source;
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
  const best = bestIndex(probabilities.slice(0, card.labels.length));
  const [label, unknown] = decide(card, probabilities, score);
  const inferred = performance.now();
  const ticket = (tickets += 1);
  const featureMap = edge.head && outputs[card.outputs.feature_map];
  edge.last = featureMap ? { ticket, featureMap: featureMap.dataSync(), shape: featureMap.shape, best, imagenet } : null;
  tf.dispose(Object.values(outputs));
  let tags = null;
  if (imagenet && edge.tags && card.tags) tags = topKTags(card, imagenet, edge.tags);
  return {
    label, unknown, confidence: probabilities[best], ood_score: score, ticket,
    probabilities: Object.fromEntries(card.labels.map((name, i) => [name, probabilities[i]])),
    tags, pixels,
    timings: { decode_ms: decoded - started, preprocess_ms: preprocessed - decoded,
      inference_ms: inferred - preprocessed, total_ms: inferred - started },
  };
}

// --- the same model in a Web Worker (edge-worker.js): loading and inference never block the page -------
let client = null;
function workerClient() {
  if (client) return client;
  // The Analyze page starts it with edge-start.js before its modules load; elsewhere it starts here.
  const worker = globalThis.riimEdgeWorker ?? new Worker(new URL("./edge-worker.js", import.meta.url), { type: "module" });
  const pending = new Map();
  let next = 0;
  worker.addEventListener("message", ({ data }) => {
    const call = pending.get(data.id);
    if (!call) return;
    if (data.progress) { call.onProgress(...data.progress); return; }
    pending.delete(data.id);
    if (data.error) call.reject(Object.assign(new Error(data.error), { key: data.key }));
    else call.resolve(data.value);
  });
  worker.addEventListener("error", (event) => {
    pending.forEach((call) => call.reject(new Error(event.message || "edge worker failed")));
    pending.clear();
  });
  client = {
    call: (message, transfer = [], onProgress = () => {}) => new Promise((resolve, reject) => {
      next += 1;
      pending.set(next, { resolve, reject, onProgress });
      worker.postMessage({ ...message, id: next }, transfer);
    }),
  };
  return client;
}

/** loadEdgeModel in the page's Web Worker: the same edge model (without the TF.js objects), for classify()
 * and explain(); nothing of TF.js runs on the page's thread. */
export async function loadWorkerModel(name, format = DEFAULT_FORMAT, onProgress = () => {}) {
  const worker = workerClient();  // starts TF.js in the worker while the version is looked up
  const meta = { name, ...await currentVersion(name) };
  const loaded = await worker.call({ type: "load", meta, format }, [], onProgress);
  return { ...meta, ...loaded, worker };
}
