// Lesson cnn-lab: a tiny CNN (Conv 3×3 → BatchNorm → ReLU → MaxPool → Dropout → Dense) trained in the
// browser with TF.js on real Fashion-MNIST photos (GET /api/v1/learn/garments), after the transform
// pipeline (normalise with the training photos' mean and deviation only); every epoch is "tracked" in a
// table and checked by the same alert rules as training/alerts.py (overfitting, plateau, threshold).
// The exercise: which alert do these curves raise?
import { element, formatNumber, percent } from "../render.js";
import { decodeArray, lineChart, meanStd } from "../lesson_data.js";

const CLASSES = "shirt,coat";
const number = (value, digits = 3) => formatNumber(value, { maximumFractionDigits: digits });

/** The lab's rules on a history {loss, val_loss, val_accuracy}: the names that fire (training/alerts.py). */
export function alerts(history, { overfitEpochs = 2, plateauEpochs = 3, minDelta = 1e-3, threshold = 0.8 } = {}) {
  const { loss, val_loss: val, val_accuracy: acc } = history;
  const fired = [];
  const k = overfitEpochs;
  if (val.length > k && [...Array(k).keys()].every((i) => val.at(-1 - i) > val.at(-2 - i) && loss.at(-1 - i) < loss.at(-2 - i))) fired.push("overfitting");
  if (val.length > plateauEpochs && Math.min(...val.slice(-plateauEpochs)) > Math.min(...val.slice(0, -plateauEpochs)) - minDelta) fired.push("plateau");
  if (acc.length && acc.at(-1) >= threshold) fired.push("threshold");
  return fired;
}

function model(tf, dropout) {
  return tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, padding: "same", useBias: false }),
    tf.layers.batchNormalization(), tf.layers.reLU(), tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.dropout({ rate: dropout }), tf.layers.flatten(), tf.layers.dense({ units: 2, activation: "softmax" })] });
}

export async function mount(root, ctx) {
  root.append(element("p", { className: "small", text: ctx.t("lesson.cnn-lab.loading") }));
  const data = await ctx.api(`/api/v1/learn/garments?classes=${CLASSES}&count=${ctx.quick ? 24 : 100}&test=${ctx.quick ? 12 : 50}`);
  const train = decodeArray(data.train.pixels).values;
  const test = decodeArray(data.test.pixels).values;
  const { mean, std } = meanStd(Array.from(train));  // fitted on the training photos only
  const tf = globalThis.tf;
  await tf.setBackend("cpu");  // training a convolution needs its gradient kernels, which the wasm backend lacks
  await tf.ready();
  const epochs = ctx.quick ? 3 : 12;
  const x = tf.tensor4d(Float32Array.from(train, (v) => (v - mean) / std), [data.train.labels.length, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(data.train.labels, "int32"), 2);
  const xTest = tf.tensor4d(Float32Array.from(test, (v) => (v - mean) / std), [data.test.labels.length, 28, 28, 1]);
  const yTest = tf.oneHot(tf.tensor1d(data.test.labels, "int32"), 2);
  const net = model(tf, 0.25);
  net.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy", metrics: ["accuracy"] });
  const history = { loss: [], val_loss: [], accuracy: [], val_accuracy: [] };
  const status = element("p", { className: "small" });
  const log = element("tbody");
  root.replaceChildren(element("p", { className: "small", text: ctx.t("lesson.cnn-lab.pipeline", { mean: number(mean, 1), std: number(std, 1),
    train: data.train.labels.length, test: data.test.labels.length }) }), status,
  element("div", { className: "table-responsive" }, element("table", { className: "table table-sm small" },
    element("thead", {}, element("tr", {}, ...["epoch", "loss", "val_loss", "val_accuracy", "alerts"].map((k) => element("th", { text: ctx.t(`lesson.cnn-lab.col_${k}`) })))), log)));
  const fired = new Set();
  await net.fit(x, y, { epochs, batchSize: 16, validationData: [xTest, yTest], shuffle: true, callbacks: { onEpochEnd: async (epoch, logs) => {
    history.loss.push(logs.loss); history.val_loss.push(logs.val_loss);
    history.accuracy.push(logs.acc); history.val_accuracy.push(logs.val_acc);
    const fresh = alerts(history).filter((name) => !fired.has(name));
    fresh.forEach((name) => fired.add(name));
    log.append(element("tr", {}, ...[epoch + 1, number(logs.loss), number(logs.val_loss), percent(logs.val_acc),
      fresh.map((name) => ctx.t(`lab.rule.${name}`)).join(", ") || "—"].map((v) => element("td", { text: String(v) }))));
    status.textContent = ctx.t("lesson.cnn-lab.training", { epoch: epoch + 1, epochs });
  } } });
  status.textContent = ctx.t("lesson.cnn-lab.done", { accuracy: percent(history.val_accuracy.at(-1)), parameters: formatNumber(net.countParams()) });
  const chart = element("div");
  root.append(chart);
  lineChart(chart, { labels: history.loss.map((_, i) => i + 1), yMax: Math.max(1, ...history.loss, ...history.val_loss),
    xLabel: ctx.t("lesson.cnn-lab.col_epoch"), yLabel: ctx.t("lesson.cnn-lab.col_loss"), datasets: [
      { label: ctx.t("lesson.cnn-lab.col_loss"), data: history.loss, colour: "#1f77b4", dashed: true },
      { label: ctx.t("lesson.cnn-lab.col_val_loss"), data: history.val_loss, colour: "#d62728" }] });
  tf.dispose([x, y, xTest, yTest, net]);
  ctx.shared.history = history;
  root.dataset.result = JSON.stringify({ epochs, accuracy: history.val_accuracy.at(-1) });
  root.dataset.state = "done";
}

const QUESTIONS = [
  { history: { loss: [1.2, 0.8, 0.5, 0.3, 0.2], val_loss: [1.1, 0.9, 0.85, 0.9, 1.0], val_accuracy: [0.5, 0.6, 0.65, 0.64, 0.63] }, answer: "overfitting" },
  { history: { loss: [0.69, 0.69, 0.69, 0.69, 0.69], val_loss: [0.69, 0.69, 0.69, 0.69, 0.69], val_accuracy: [0.5, 0.5, 0.5, 0.5, 0.5] }, answer: "plateau" },
  { history: { loss: [0.7, 0.5, 0.4, 0.35, 0.3], val_loss: [0.68, 0.5, 0.42, 0.37, 0.33], val_accuracy: [0.55, 0.7, 0.76, 0.8, 0.83] }, answer: "threshold" },
];

export async function exercise(root, ctx) {
  const choices = ["overfitting", "plateau", "threshold"];
  QUESTIONS.forEach((question, index) => {
    const feedback = element("p", { className: "small mb-2" });
    const rows = ["loss", "val_loss", "val_accuracy"].map((key) => `${ctx.t(`lesson.cnn-lab.col_${key}`)}: ${question.history[key].map((v) => number(v, 2)).join(" → ")}`);
    const buttons = choices.map((choice) => {
      const button = element("button", { className: "btn btn-sm btn-outline-primary me-1", text: ctx.t(`lab.rule.${choice}`), attrs: { type: "button" } });
      button.addEventListener("click", () => {
        const right = choice === question.answer && alerts(question.history).includes(choice);
        feedback.textContent = ctx.t(right ? "lesson.cnn-lab.right" : "lesson.cnn-lab.wrong", { rule: ctx.t(`lab.rule.${question.answer}`) })
          + " " + ctx.t(`lesson.cnn-lab.why_${question.answer}`);
        feedback.className = `small mb-2 ${right ? "text-success" : "text-danger"}`;
      });
      return button;
    });
    root.append(element("div", { className: "mb-2" }, element("p", { className: "small mb-1 fw-semibold", text: ctx.t("lesson.cnn-lab.question", { n: index + 1 }) }),
      ...rows.map((text) => element("div", { className: "small font-monospace", text })), element("div", { className: "mt-1" }, ...buttons), feedback));
  });
  root.dataset.state = "ready";
}
