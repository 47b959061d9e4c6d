// What the training lessons' demos share (transfer learning, overfitting, cross-validation, augmentation):
// the arrays of /api/v1/lessons (app/lesson_data.py), Fashion-MNIST rows with the served model's embeddings
// fetched chunk by chunk with a progress bar, and the classification head trained in the browser with TF.js —
// the same head as training/finetune.py's stage 1 (Dropout → Dense softmax on the frozen backbone's
// embeddings, Adam, cross-entropy).
import { element, formatNumber } from "./render.js";

const FASHION_CHUNK = 100;

/** A {dtype, shape, data: base64 little-endian} array of the API as a typed array (float16 → Float32Array). */
export function decodeArray({ dtype, shape, data }) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  if (dtype === "uint8") return { values: bytes, shape };
  if (dtype === "float32") return { values: new Float32Array(bytes.buffer), shape };
  if (dtype === "float16") return { values: halfToFloat(new Uint16Array(bytes.buffer)), shape };
  throw new Error(`unsupported dtype ${dtype}`);
}

function halfToFloat(halves) {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i += 1) {
    const h = halves[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) out[i] = sign * 2 ** -14 * (fraction / 1024);
    else if (exponent === 31) out[i] = fraction ? NaN : sign * Infinity;
    else out[i] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  return out;
}

/** A Bootstrap progress bar with a caption; update(done, total, text). */
export function progressBar() {
  const fill = element("div", { className: "progress-bar", attrs: { role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" } });
  const caption = element("p", { className: "small text-body-secondary mb-1" });
  const node = element("div", { className: "lesson-progress mb-2" }, caption, element("div", { className: "progress" }, fill));
  return {
    node,
    update(done, total, text) {
      const share = total ? Math.min(100, (100 * done) / total) : 0;
      fill.style.width = `${share}%`;
      fill.setAttribute("aria-valuenow", String(Math.round(share)));
      caption.textContent = text;
    },
  };
}

/**
 * The first ``rows`` images of a lesson split ("train" or "validation") of real Fashion-MNIST, with the served
 * model's embeddings: {classes, labels, pixels (Uint8Array rows×784), x (Float32Array rows×dimension),
 * dimension, model, cached (all from the server's cache), seconds}. Fetched in chunks so ``onChunk(done, rows)``
 * can show progress (the first visit computes the embeddings); kept in ``ctx.shared`` for the page.
 */
export async function fashionSet(ctx, split, rows, onChunk = () => {}) {
  const key = `fashion-${split}`;
  const have = ctx.shared[key];
  if (have && have.labels.length >= rows) return slice(have, rows);
  const started = performance.now();
  const parts = have ? [have] : [];
  let cached = true;
  let model;
  for (let start = have ? have.labels.length : 0; start < rows; start += FASHION_CHUNK) {
    onChunk(start, rows);
    const count = Math.min(FASHION_CHUNK, rows - start);
    const body = await ctx.api(`/api/v1/lessons/fashion?split=${split}&start=${start}&count=${count}`);
    const embeddings = decodeArray(body.embeddings);
    parts.push({ classes: body.classes, labels: body.labels, pixels: decodeArray(body.pixels).values,
      x: embeddings.values, dimension: embeddings.shape[1] });
    cached &&= body.cached;
    model = body.model;
  }
  onChunk(rows, rows);
  const set = concat(parts);
  Object.assign(set, { model: model || have.model, cached, seconds: (performance.now() - started) / 1000 });
  ctx.shared[key] = set;
  return slice(set, rows);
}

function concat(parts) {
  const join = (name, Type) => {
    const out = new Type(parts.reduce((n, p) => n + p[name].length, 0));
    let offset = 0;
    for (const part of parts) { out.set(part[name], offset); offset += part[name].length; }
    return out;
  };
  return { classes: parts[0].classes, dimension: parts[0].dimension, labels: parts.flatMap((p) => [...p.labels]),
    pixels: join("pixels", Uint8Array), x: join("x", Float32Array) };
}

function slice(set, rows) {
  return { ...set, labels: set.labels.slice(0, rows), pixels: set.pixels.subarray(0, rows * 784),
    x: set.x.subarray(0, rows * set.dimension) };
}

/** Rows ``indices`` of a set's embeddings and labels: {x, labels}. */
export function pick(set, indices) {
  const x = new Float32Array(indices.length * set.dimension);
  indices.forEach((row, i) => x.set(set.x.subarray(row * set.dimension, (row + 1) * set.dimension), i * set.dimension));
  return { x, labels: indices.map((row) => set.labels[row]) };
}

/** A 28×28 grey Fashion-MNIST image of a set as a canvas (an image, not a plot). */
export function thumbnail(set, row, className = "lesson-fashion-thumb") {
  const canvas = element("canvas", { className, attrs: { width: "28", height: "28" } });
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 784; i += 1) {
    const v = set.pixels[row * 784 + i];
    image.data.set([v, v, v, 255], i * 4);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** TF.js ready: the vendored wasm backend when it starts, else the plain JS one (both train this small head). */
let backend;
export function tfReady() {
  const tf = globalThis.tf;
  backend ??= (async () => {
    try {
      tf.wasm.setWasmPaths(new URL("../vendor/tfjs/", import.meta.url).href);
      if (!(await tf.setBackend("wasm"))) throw new Error("no wasm");
    } catch {
      await tf.setBackend("cpu");
    }
    await tf.ready();
    return tf;
  })();
  return backend;
}

/**
 * Train a new head (Dropout ``dropout`` → Dense softmax) on embeddings ``train`` {x, labels}; ``validation``
 * optional. ``patience``: early stopping on the validation loss, keeping the best epoch's weights (as training
 * does). ``onEpoch(epoch, logs)`` after each epoch. Returns {model, history: {loss, acc, val_loss, val_acc},
 * bestEpoch, stoppedEpoch}; dispose the model when done.
 */
export async function trainHead(train, { dimension, classes, validation = null, epochs = 30, batchSize = 16,
  learningRate = 1e-3, dropout = 0, patience = 0, seed = 0, onEpoch = () => {} }) {
  const tf = await tfReady();
  const model = tf.sequential();
  model.add(tf.layers.dropout({ rate: dropout, inputShape: [dimension], seed }));
  model.add(tf.layers.dense({ units: classes, activation: "softmax", kernelInitializer: tf.initializers.glorotUniform({ seed }) }));
  model.compile({ optimizer: tf.train.adam(learningRate), loss: "categoricalCrossentropy", metrics: ["accuracy"] });
  const tensors = (set) => [tf.tensor2d(set.x, [set.labels.length, dimension]), tf.oneHot(tf.tensor1d(set.labels, "int32"), classes)];
  const [xs, ys] = tensors(train);
  const validationData = validation ? tensors(validation) : undefined;
  const history = { loss: [], acc: [], val_loss: [], val_acc: [] };
  let best = { loss: Infinity, epoch: -1, weights: null };
  let stoppedEpoch = epochs;
  await model.fit(xs, ys, {
    epochs, batchSize, shuffle: true, validationData, validationBatchSize: 1024, verbose: 0,
    yieldEvery: "auto",  // the page repaints during training
    callbacks: {
      onEpochEnd: (epoch, logs) => {
        history.loss.push(logs.loss);
        history.acc.push(logs.acc ?? logs.accuracy);
        if (validation) {
          history.val_loss.push(logs.val_loss);
          history.val_acc.push(logs.val_acc ?? logs.val_accuracy);
        }
        if (patience && validation) {
          if (logs.val_loss < best.loss) {
            best.weights?.forEach((w) => w.dispose());
            best = { loss: logs.val_loss, epoch, weights: model.getWeights().map((w) => w.clone()) };
          } else if (epoch - best.epoch >= patience) {
            model.stopTraining = true;
            stoppedEpoch = epoch + 1;
          }
        }
        onEpoch(epoch, logs);
      },
    },
  });
  if (best.weights) {
    model.setWeights(best.weights);
    best.weights.forEach((w) => w.dispose());
  }
  tf.dispose([xs, ys, ...(validationData || [])]);
  return { model, history, bestEpoch: best.epoch, stoppedEpoch };
}

/** Class probabilities of a trained head for embeddings {x, labels?}: an array of Float32Array rows. */
export function predictHead(model, set, dimension) {
  const tf = globalThis.tf;
  const rows = set.x.length / dimension;
  const probabilities = tf.tidy(() => model.predict(tf.tensor2d(set.x, [rows, dimension])).arraySync());
  return probabilities;
}

/** The share of rows whose most probable class is its label. */
export function accuracy(probabilities, labels) {
  const right = probabilities.filter((row, i) => row.indexOf(Math.max(...row)) === labels[i]).length;
  return labels.length ? right / labels.length : 0;
}

/** A Chart.js line chart in a fixed-height box: ``datasets`` of {label, data, colour, dashed}. */
export function lineChart(parent, { labels, datasets, yLabel, xLabel, yMax = 1 }) {
  const canvas = element("canvas");
  parent.append(element("div", { className: "chart-canvas" }, canvas));
  return new globalThis.Chart(canvas, {
    type: "line",
    data: { labels, datasets: datasets.map((d) => ({ label: d.label, data: d.data, borderColor: d.colour,
      backgroundColor: d.colour, borderDash: d.dashed ? [6, 4] : [], pointRadius: 0, borderWidth: 2, tension: 0.2 })) },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { position: "top", labels: { boxWidth: 14 } } },
      scales: {
        x: { title: { display: true, text: xLabel }, ticks: { maxTicksLimit: 10 } },
        y: { min: 0, max: yMax, title: { display: true, text: yLabel },
          ticks: { callback: (value) => (yMax === 1 ? formatNumber(value, { style: "percent" }) : formatNumber(value)) } },
      },
    },
  });
}

/** Mean and (population) standard deviation. */
export function meanStd(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return { mean, std };
}

/** A seeded pseudo-random generator (mulberry32): the same folds on every visit. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
