// Lesson neural-networks: a small multilayer perceptron trained in the browser with TF.js on two numbers per
// real Fashion-MNIST photo, TF-Playground style: the decision regions are redrawn as it trains, and one weight
// is followed through a step — its forward values, its gradient by the chain rule (checked against TF.js's
// automatic gradient) and its update. The exercise asks which way that weight moves for one photo.
import { element, formatNumber, labelText, percent } from "../render.js";
import { inkFeatures, loadGarments, thumbnail } from "./garments.js";

const Chart = globalThis.Chart;
const tf = globalThis.tf;
const PAIRS = ["bag,ankle_boot", "sneaker,bag"];
const ARCHITECTURES = { 0: [], 1: [6], 2: [6, 6] };
const RATES = [0.1, 0.5, 2];
const COLOURS = [[13, 110, 253], [253, 126, 20]];
const GRID = 48;
const number = (value, digits = 4) => formatNumber(value, { maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2) });

/** A fresh network: for each layer a weight matrix (inputs × outputs) and a bias, as TF.js variables. */
export function makeNetwork(hidden, seed = 7) {
  const sizes = [2, ...hidden, 1];
  return sizes.slice(1).map((outputs, i) => ({
    W: tf.variable(tf.randomNormal([sizes[i], outputs], 0, 1 / Math.sqrt(sizes[i]), "float32", seed + i)),
    b: tf.variable(tf.zeros([outputs])),
  }));
}

/** The network's logits for a batch of inputs: tanh in the hidden layers, a sigmoid is applied by the loss. */
export function logits(network, x) {
  return network.reduce((a, layer, i) => {
    const z = a.matMul(layer.W).add(layer.b);
    return i < network.length - 1 ? z.tanh() : z;
  }, x);
}

const lossOf = (network, x, y) => tf.losses.sigmoidCrossEntropy(y, logits(network, x));

/** Forward and backward by hand for ONE example (plain numbers): every layer's activations and the gradient
 * of the loss with respect to the first weight W[0][0] of the first layer, by the chain rule. */
export function chainRule(weights, x, label) {
  const activations = [x];
  weights.forEach(({ W, b }, layer) => {
    const input = activations[activations.length - 1];
    const z = b.map((bias, j) => bias + input.reduce((sum, value, i) => sum + value * W[i][j], 0));
    activations.push(layer < weights.length - 1 ? z.map(Math.tanh) : z);
  });
  const output = 1 / (1 + Math.exp(-activations[activations.length - 1][0]));
  let delta = [output - label];  // d loss / d logit of the sigmoid cross-entropy
  for (let layer = weights.length - 1; layer > 0; layer -= 1) {
    const a = activations[layer];
    delta = a.map((value, i) => (1 - value * value) * delta.reduce((sum, d, j) => sum + d * weights[layer].W[i][j], 0));
  }
  return { activations, output, error: output - label, delta: delta[0], gradient: delta[0] * x[0] };
}

/** TF.js's automatic gradient of the same loss with respect to W[0][0]. */
function automaticGradient(network, x, label) {
  return tf.tidy(() => {
    const { grads } = tf.variableGrads(() => lossOf(network, tf.tensor2d([x]), tf.tensor2d([[label]])), [network[0].W]);
    return grads[network[0].W.name].arraySync()[0][0];
  });
}

const snapshot = (network) => network.map(({ W, b }) => ({ W: W.arraySync(), b: b.arraySync() }));

function standardiser(points) {
  const mean = [0, 1].map((k) => points.reduce((s, p) => s + p[k], 0) / points.length);
  const sd = [0, 1].map((k) => Math.sqrt(points.reduce((s, p) => s + (p[k] - mean[k]) ** 2, 0) / points.length) || 1);
  return (point) => [(point[0] - mean[0]) / sd[0], (point[1] - mean[1]) / sd[1]];
}

function box(points) {
  const range = (k) => {
    const values = points.map((p) => p[k]);
    const pad = (Math.max(...values) - Math.min(...values)) * 0.05;
    return [Math.min(...values) - pad, Math.max(...values) + pad];
  };
  const [x0, x1] = range(0);
  const [y0, y1] = range(1);
  return { x0, x1, y0, y1 };
}

/** The decision regions as a small image: each pixel coloured by the network's probability there. */
function regions(network, scale, area, canvas) {
  const grid = [];
  for (let row = 0; row < GRID; row += 1) {
    for (let column = 0; column < GRID; column += 1) {
      grid.push(scale([area.x0 + ((column + 0.5) / GRID) * (area.x1 - area.x0), area.y1 - ((row + 0.5) / GRID) * (area.y1 - area.y0)]));
    }
  }
  const probabilities = tf.tidy(() => logits(network, tf.tensor2d(grid)).sigmoid().dataSync());
  const image = new ImageData(GRID, GRID);
  probabilities.forEach((p, i) => {
    const colour = COLOURS[p > 0.5 ? 1 : 0];
    image.data.set([...colour, Math.round(40 + 150 * Math.abs(p - 0.5))], i * 4);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
}

const accuracyOf = (network, x, labels) => tf.tidy(() => {
  const said = logits(network, x).dataSync();
  return labels.filter((label, i) => (said[i] > 0) === (label === 1)).length / labels.length;
});

export async function mount(root, ctx) {
  const { t } = ctx;
  if (!tf) throw new Error("TF.js");
  await tf.setBackend("cpu");  // a tiny network: the plain JavaScript backend is the quickest and exact
  const select = (id, options) => element("select", { className: "form-select form-select-sm w-auto", attrs: { id } },
    ...options.map(([value, text]) => element("option", { text, attrs: { value } })));
  const pair = select("nn-pair", PAIRS.map((p) => [p, p.split(",").map(labelText).join(` ${t("lesson.intro-ai.versus")} `)]));
  const depth = select("nn-depth", Object.keys(ARCHITECTURES).map((k) => [k, t(`lesson.neural-networks.depth_${k}`)]));
  depth.value = "1";
  const rate = select("nn-rate", RATES.map((r) => [String(r), formatNumber(r)]));
  rate.value = "0.5";
  const play = element("button", { className: "btn btn-primary btn-sm", text: t("lesson.neural-networks.play"), attrs: { type: "button" } });
  const stepButton = element("button", { className: "btn btn-outline-primary btn-sm", text: t("lesson.neural-networks.step"), attrs: { type: "button" } });
  const reset = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("lesson.neural-networks.reset"), attrs: { type: "button" } });
  const label = (id, key) => element("label", { className: "form-label mb-0 small", text: t(key), attrs: { for: id } });
  const status = element("p", { className: "mb-1", attrs: { "aria-live": "polite" } });
  const regionCanvas = element("canvas", { attrs: { width: GRID, height: GRID } });
  const chartCanvas = element("canvas", { attrs: { role: "img", "aria-label": t("lesson.neural-networks.chart_label") } });
  const lossCanvas = element("canvas", { attrs: { role: "img", "aria-label": t("lesson.neural-networks.loss_label") } });
  const exampleSelect = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "nn-example" } });
  const weightPanel = element("div", { className: "nn-weight small" });
  root.append(
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
      label("nn-pair", "lesson.intro-ai.pair"), pair, label("nn-depth", "lesson.neural-networks.depth"), depth,
      label("nn-rate", "lesson.neural-networks.rate"), rate),
    element("div", { className: "d-flex flex-wrap gap-2 mb-2" }, play, stepButton, reset),
    status,
    element("div", { className: "row g-3" },
      element("div", { className: "col-lg-7" }, element("div", { className: "chart-canvas chart-tall" }, chartCanvas),
        element("p", { className: "small text-body-secondary mt-1", text: t("lesson.neural-networks.chart_explain") })),
      element("div", { className: "col-lg-5" }, element("div", { className: "chart-canvas" }, lossCanvas),
        element("p", { className: "small text-body-secondary mt-1", text: t("lesson.neural-networks.loss_explain") }))),
    element("h3", { className: "h6 mt-2", text: t("lesson.neural-networks.weight_heading") }),
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" }, label("nn-example", "lesson.neural-networks.example"), exampleSelect),
    weightPanel);

  const backgroundPlugin = {
    id: "regions",
    beforeDatasetsDraw(chart) {
      const { ctx: context, chartArea: area } = chart;
      context.save();
      context.imageSmoothingEnabled = true;
      context.drawImage(regionCanvas, area.left, area.top, area.right - area.left, area.bottom - area.top);
      context.restore();
    },
  };
  const chart = new Chart(chartCanvas, {
    type: "scatter", data: { datasets: [] }, plugins: [backgroundPlugin],
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "top" } },
      scales: { x: { title: { display: true, text: t("lesson.neural-networks.x_axis") } },
        y: { title: { display: true, text: t("lesson.neural-networks.y_axis") } } } },
  });
  const lossChart = new Chart(lossCanvas, {
    type: "line", data: { labels: [], datasets: [{ label: t("lesson.neural-networks.loss"), data: [], borderColor: "#6f42c1", pointRadius: 0, borderWidth: 2 }] },
    options: { animation: false, maintainAspectRatio: false, scales: { x: { title: { display: true, text: t("lesson.neural-networks.steps") } },
      y: { beginAtZero: true, title: { display: true, text: t("lesson.neural-networks.loss") } } } },
  });

  const state = { network: null, running: false, steps: 0, data: null };
  ctx.shared.nn = state;

  function redraw() {
    regions(state.network, state.scale, state.area, regionCanvas);
    chart.update("none");
    lossChart.update("none");
    const train = accuracyOf(state.network, state.x, state.data.train.labels);
    const test = accuracyOf(state.network, state.testX, state.data.test.labels);
    status.textContent = t("lesson.neural-networks.status", { steps: state.steps, loss: number(state.loss, 3), train: percent(train, 0), test: percent(test, 0) });
    return { train, test };
  }

  function trainStep() {
    const cost = state.optimizer.minimize(() => lossOf(state.network, state.x, state.y), true);
    state.loss = cost.dataSync()[0];
    cost.dispose();
    state.steps += 1;
    lossChart.data.labels.push(state.steps);
    lossChart.data.datasets[0].data.push(state.loss);
  }

  /** One step with the chosen weight followed: forward, gradient two ways, the update checked. */
  function explainedStep() {
    const k = Number(exampleSelect.value);
    const x = state.scale(state.data.train.points[k]);
    const y = state.data.train.labels[k];
    const before = snapshot(state.network);
    const chain = chainRule(before, x, y);
    const automatic = automaticGradient(state.network, x, y);
    const batchGradient = tf.tidy(() => tf.variableGrads(() => lossOf(state.network, state.x, state.y), [state.network[0].W])
      .grads[state.network[0].W.name].arraySync()[0][0]);
    const lr = Number(rate.value);
    trainStep();
    const after = state.network[0].W.arraySync()[0][0];
    const w = before[0].W[0][0];
    const hiddenA = chain.activations.length > 2 ? chain.activations[1][0] : null;
    weightPanel.replaceChildren(
      element("p", { className: "mb-1", text: t("lesson.neural-networks.forward", { k: k + 1, label: state.names[y], x1: number(x[0], 3), x2: number(x[1], 3),
        w: number(w), p: number(chain.output, 3), y }) }),
      ...(hiddenA === null ? [] : [element("p", { className: "mb-1", text: t("lesson.neural-networks.hidden", { a: number(hiddenA, 3) }) })]),
      element("p", { className: "mb-1", text: t("lesson.neural-networks.backward", { error: number(chain.error, 3), delta: number(chain.delta), x1: number(x[0], 3),
        gradient: number(chain.gradient, 6), automatic: number(automatic, 6) }) }),
      element("p", { className: "mb-0", text: t("lesson.neural-networks.update", { w: number(w, 6), lr: formatNumber(lr), g: number(batchGradient, 6),
        after: number(after, 6), n: state.data.train.labels.length }) }));
    const check = { grad_chain: chain.gradient, grad_tf: automatic, grad_difference: Math.abs(chain.gradient - automatic),
      update_difference: Math.abs(after - (w - lr * batchGradient)) };
    return check;
  }

  async function start() {
    state.running = false;
    state.network?.forEach(({ W, b }) => { W.dispose(); b.dispose(); });
    state.data = await loadGarments(ctx, pair.value, inkFeatures, ctx.quick ? 40 : 100, ctx.quick ? 20 : 50);
    state.names = state.data.classes.map(labelText);
    state.scale = standardiser(state.data.train.points);
    state.area = box([...state.data.train.points, ...state.data.test.points]);
    state.network = makeNetwork(ARCHITECTURES[depth.value]);
    state.optimizer = tf.train.sgd(Number(rate.value));
    state.x?.dispose();
    state.y?.dispose();
    state.testX?.dispose();
    state.x = tf.tensor2d(state.data.train.points.map(state.scale));
    state.y = tf.tensor2d(state.data.train.labels.map((label) => [label]));
    state.testX = tf.tensor2d(state.data.test.points.map(state.scale));
    state.steps = 0;
    state.loss = tf.tidy(() => lossOf(state.network, state.x, state.y).dataSync()[0]);
    lossChart.data.labels = [0];
    lossChart.data.datasets[0].data = [state.loss];
    Object.assign(chart.options.scales.x, { min: state.area.x0, max: state.area.x1 });
    Object.assign(chart.options.scales.y, { min: state.area.y0, max: state.area.y1 });
    const byClass = (part, label) => state.data[part].points.filter((_, i) => state.data[part].labels[i] === label).map(([x, y]) => ({ x, y }));
    chart.data.datasets = [0, 1].map((label) => ({ label: state.names[label], data: byClass("train", label),
      backgroundColor: `rgb(${COLOURS[label].join(",")})`, borderColor: "#fff", pointRadius: 4 }));
    exampleSelect.replaceChildren(...state.data.train.labels.slice(0, 10).map((label, i) =>
      element("option", { text: t("lesson.neural-networks.example_option", { k: i + 1, label: state.names[label] }), attrs: { value: String(i) } })));
    redraw();
  }

  async function run(steps) {
    state.running = true;
    play.textContent = t("lesson.neural-networks.pause");
    for (let i = 0; i < steps && state.running; i += 1) {
      trainStep();
      if (i % 10 === 9) {
        redraw();
        await new Promise((resolve) => { requestAnimationFrame(resolve); });
      }
    }
    state.running = false;
    play.textContent = t("lesson.neural-networks.play");
    return redraw();
  }

  play.addEventListener("click", () => {
    if (state.running) state.running = false;
    else run(300);
  });
  stepButton.addEventListener("click", () => { state.running = false; explainedStep(); redraw(); });
  exampleSelect.addEventListener("change", () => { explainedStep(); redraw(); });
  const restart = () => start().then(() => run(ctx.quick ? 150 : 200)).then(() => { explainedStep(); redraw(); })
    .catch((error) => { status.textContent = error.message; root.dataset.state = "error"; });
  [pair, depth].forEach((control) => control.addEventListener("change", restart));
  rate.addEventListener("change", () => { state.optimizer = tf.train.sgd(Number(rate.value)); });
  reset.addEventListener("click", restart);

  await start();
  const { train, test } = await run(ctx.quick ? 150 : 200);
  const check = explainedStep();
  redraw();
  root.dataset.result = JSON.stringify({ train_accuracy: train, test_accuracy: test, ...check });
  root.dataset.expect = JSON.stringify({ train_accuracy: [0.7, 1], test_accuracy: [0.65, 1], grad_difference: [0, 1e-4], update_difference: [0, 1e-4] });
  root.dataset.state = "done";
}

/** Predict-then-reveal: for one photo alone, will one gradient step move the weight up or down? */
export async function exercise(root, ctx) {
  const { t } = ctx;
  const state = ctx.shared.nn;
  const question = element("div", { className: "d-flex flex-wrap gap-3 align-items-center" });
  const verdict = element("p", { className: "mt-2 mb-1", attrs: { "aria-live": "polite" } });
  const next = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("lesson.intro-ai.another"), attrs: { type: "button" } });
  const score = element("p", { className: "small text-body-secondary mb-0" });
  root.append(question, verdict, next, score);
  let index = 10;
  let right = 0;
  let answered = 0;

  function ask() {
    index = (index + 7) % state.data.train.points.length;
    const x = state.scale(state.data.train.points[index]);
    const y = state.data.train.labels[index];
    const weights = snapshot(state.network);
    const chain = chainRule(weights, x, y);
    verdict.textContent = "";
    const buttons = ["up", "down"].map((direction) => element("button", { className: "btn btn-outline-primary btn-sm",
      text: t(`lesson.neural-networks.${direction}`), attrs: { type: "button", "data-answer": direction } }));
    buttons.forEach((button) => button.addEventListener("click", () => {
      const gradient = automaticGradient(state.network, x, y);
      const moves = gradient > 0 ? "down" : "up";
      const ok = button.dataset.answer === moves;
      answered += 1;
      right += ok;
      buttons.forEach((other) => { other.disabled = true; });
      verdict.className = `mt-2 mb-1 ${ok ? "text-success" : "text-danger"}`;
      const lr = Number(document.getElementById("nn-rate")?.value || 0.5);
      verdict.textContent = `${t(ok ? "lesson.neural-networks.right" : "lesson.neural-networks.wrong")} ${t("lesson.neural-networks.because", {
        error: number(chain.error, 3), delta: number(chain.delta), x1: number(x[0], 3), gradient: number(gradient, 6),
        direction: t(`lesson.neural-networks.${moves}`), w: number(weights[0].W[0][0], 6), after: number(weights[0].W[0][0] - lr * gradient, 6), lr: formatNumber(lr) })}`;
      score.textContent = t("lesson.intro-ai.score", { right, answered });
      if (right >= 3) ctx.complete();
    }));
    question.replaceChildren(thumbnail(state.data.train.images[index], state.names[y]),
      element("span", { text: t("lesson.neural-networks.question", { label: state.names[y], p: number(chain.output, 3), x1: number(x[0], 3) }) }), ...buttons);
    question.querySelector("canvas").classList.add("garment-big");
  }
  next.addEventListener("click", ask);
  ask();
  root.dataset.state = "ready";
}
