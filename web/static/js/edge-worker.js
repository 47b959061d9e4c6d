// The Analyze page's browser model in a Web Worker (edge.js loadWorkerModel): TF.js wasm, the download with
// its progress, decoding, preprocessing, inference and the CAM all run here, so the page never freezes.
// Messages {id, type, ...} are answered {id, value} or {id, error, key}; a load also sends {id, progress}.
import "../vendor/tfjs/tf-core.es2017.min.js";  // TF.js core, converter and wasm only: a third of tf.min.js to start
import "../vendor/tfjs/tf-converter.es2017.min.js";
import "../vendor/tfjs/tf-backend-wasm.es2017.min.js";
import "./contract.js";  // edge.js's own imports, named here so that they are fetched at once with it
import "./preprocess.js";
import { classify, explain, openModel, servedFormat, wasmBackend } from "./edge.js";

const { tf } = globalThis;
wasmBackend().catch(() => {});  // compile the wasm binary while the page looks up the model's version

// key → the edge model (a promise: a load asked twice is done once); only the one the page asked for last
// is kept (the page uses one model at a time; a slower earlier load must not dispose of it).
const models = new Map();
let latest = null;

// What the page receives of a loaded model: everything but the TF.js objects.
const summary = async (key, edge) => ({ key, format: edge.format, source: edge.source, loadMs: edge.loadMs,
  warmupMs: edge.warmupMs, backend: edge.backend, threads: tf.wasm.getThreadsCount(),
  simd: await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") });

async function load({ id, meta, format }) {
  const key = `${meta.name}/${meta.version}/${servedFormat(meta.card, format)}`;
  latest = key;
  if (!models.has(key)) {
    const loading = openModel(meta, format, (...progress) => postMessage({ id, progress }));
    models.set(key, loading);
    loading.catch(() => models.delete(key));
  }
  const edge = await models.get(key);
  models.forEach((other, name) => {
    if (name === latest) return;
    models.delete(name);
    other.then((old) => old.model.dispose(), () => {});
  });
  return summary(key, edge);
}

async function model(key) {
  if (!models.has(key)) throw new Error(`browser model ${key} is not loaded`);
  return models.get(key);
}

const handlers = {
  load,
  classify: async ({ key, source }) => {
    const result = await classify(await model(key), source);
    return [result, [result.pixels.buffer]];
  },
  explain: async ({ key, ticket }) => explain(await model(key), { ticket }),
};

addEventListener("message", async ({ data }) => {
  try {
    const answer = await handlers[data.type](data);
    const [value, transfer] = Array.isArray(answer) ? answer : [answer, []];
    postMessage({ id: data.id, value }, transfer);
  } catch (error) {
    postMessage({ id: data.id, error: error.message, key: error.key });
  }
});
