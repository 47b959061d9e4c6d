// Lesson intro-ai: a tiny classifier trained in the browser on real Fashion-MNIST photos, each turned into two
// numbers (how wide and how tall the garment is). Training moves the line step by step; prediction labels
// photos it never saw. Demo (mount) and a predict-then-reveal exercise (exercise).
import { element, formatNumber, labelText, percent } from "../render.js";
import { loadGarments, shapeFeatures, thumbnail } from "./garments.js";

const Chart = globalThis.Chart;
const PAIRS = ["sneaker,bag", "tshirt,trouser", "dress,coat", "sandal,ankle_boot"];
const COLOURS = ["#0d6efd", "#fd7e14"];
const LEARNING_RATE = 4;

/** The model's answer for one point: the probability that it is the second class (logistic regression). */
export function predict(model, [width, height]) {
  return 1 / (1 + Math.exp(-(model.w[0] * width + model.w[1] * height + model.b)));
}

/** One training step: compare every answer with its label and move the weights against the error. */
export function trainStep(model, points, labels, learningRate) {
  const gradient = [0, 0, 0];
  let loss = 0;
  points.forEach((point, i) => {
    const p = predict(model, point);
    const error = p - labels[i];
    gradient[0] += error * point[0];
    gradient[1] += error * point[1];
    gradient[2] += error;
    loss -= Math.log(labels[i] ? Math.max(p, 1e-9) : Math.max(1 - p, 1e-9));
  });
  model.w[0] -= (learningRate * gradient[0]) / points.length;
  model.w[1] -= (learningRate * gradient[1]) / points.length;
  model.b -= (learningRate * gradient[2]) / points.length;
  return loss / points.length;
}

const accuracy = (model, points, labels) => points.filter((point, i) => (predict(model, point) > 0.5) === (labels[i] === 1)).length / points.length;

/** The decision line w·x + b = 0 clipped to the plotted box (empty if it does not cross it). */
function boundary(model, box) {
  const [a, c] = model.w;
  const found = [];
  if (Math.abs(c) > 1e-9) [box.x0, box.x1].forEach((x) => found.push({ x, y: -(a * x + model.b) / c }));
  if (Math.abs(a) > 1e-9) [box.y0, box.y1].forEach((y) => found.push({ x: -(c * y + model.b) / a, y }));
  const inside = found.filter((p) => p.x >= box.x0 - 1e-9 && p.x <= box.x1 + 1e-9 && p.y >= box.y0 - 1e-9 && p.y <= box.y1 + 1e-9);
  return inside.sort((p, q) => p.x - q.x || p.y - q.y).filter((p, i, all) => i === 0 || i === all.length - 1);
}

/** The plotted box: the points' range with a margin, inside 0..1. */
function plotBox(points) {
  const range = (axis) => {
    const values = points.map((point) => point[axis]);
    const low = Math.max(0, Math.floor((Math.min(...values) - 0.05) * 10) / 10);
    return [low, Math.min(1, Math.max(low + 0.2, Math.ceil((Math.max(...values) + 0.05) * 10) / 10))];
  };
  const [x0, x1] = range(0);
  const [y0, y1] = range(1);
  return { x0, x1, y0, y1 };
}

export async function mount(root, ctx) {
  const { t } = ctx;
  const select = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "intro-pair" } },
    ...PAIRS.map((pair) => element("option", { text: pair.split(",").map(labelText).join(` ${t("lesson.intro-ai.versus")} `), attrs: { value: pair } })));
  const again = element("button", { className: "btn btn-primary btn-sm", text: t("lesson.intro-ai.train"), attrs: { type: "button" } });
  const status = element("p", { className: "mb-1 intro-status", attrs: { "aria-live": "polite" } });
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": t("lesson.intro-ai.chart_label") } });
  const strip = element("div", { className: "garment-strip" });
  root.append(
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
      element("label", { className: "form-label mb-0", text: t("lesson.intro-ai.pair"), attrs: { for: "intro-pair" } }), select, again),
    status,
    element("div", { className: "chart-canvas chart-tall" }, canvas),
    element("p", { className: "small text-body-secondary mt-2 mb-1", text: t("lesson.intro-ai.chart_explain") }),
    element("h3", { className: "h6 mt-2", text: t("lesson.intro-ai.new_photos") }),
    strip);

  const chart = new Chart(canvas, {
    type: "scatter",
    data: { datasets: [] },
    options: {
      animation: false, maintainAspectRatio: false,
      scales: {
        x: { title: { display: true, text: t("lesson.intro-ai.width_axis") } },
        y: { title: { display: true, text: t("lesson.intro-ai.height_axis") } },
      },
      plugins: { legend: { position: "top" } },
    },
  });

  let run = 0;
  async function train() {
    const mine = ++run;
    again.disabled = true;
    root.dataset.state = "loading";
    const data = await loadGarments(ctx, select.value, shapeFeatures);
    if (mine !== run) return;
    const names = data.classes.map(labelText);
    const model = { w: [1, -1], b: 0 };  // a deliberately wrong start, so the line has to move
    const steps = 60;  // quick mode only skips the animation delay
    const trainSet = (label) => data.train.points.filter((_, i) => data.train.labels[i] === label).map(([x, y]) => ({ x, y }));
    chart.data.datasets = [
      { label: `${names[0]} (${t("lesson.intro-ai.examples")})`, data: trainSet(0), backgroundColor: COLOURS[0], pointRadius: 4 },
      { label: `${names[1]} (${t("lesson.intro-ai.examples")})`, data: trainSet(1), backgroundColor: COLOURS[1], pointRadius: 4 },
      { label: t("lesson.intro-ai.new_points"), data: data.test.points.map(([x, y]) => ({ x, y })), pointStyle: "triangle",
        pointRadius: 6, backgroundColor: "#6c757d", borderColor: "#212529" },
      { label: t("lesson.intro-ai.line"), data: [], type: "line", borderColor: "#198754", borderWidth: 3, pointRadius: 0, showLine: true },
    ];
    const box = plotBox([...data.train.points, ...data.test.points]);
    Object.assign(chart.options.scales.x, { min: box.x0, max: box.x1 });
    Object.assign(chart.options.scales.y, { min: box.y0, max: box.y1 });
    const tiles = data.test.images.slice(0, 8).map((pixels, i) => {
      const caption = element("span", { className: "small" });
      const tile = element("figure", { className: "garment-tile mb-0" }, thumbnail(pixels, names[data.test.labels[i]]), element("figcaption", {}, caption));
      return { tile, caption, i };
    });
    strip.replaceChildren(...tiles.map(({ tile }) => tile));
    let loss = 0;
    for (let step = 1; step <= steps; step += 1) {
      loss = trainStep(model, data.train.points, data.train.labels, LEARNING_RATE);
      chart.data.datasets[3].data = boundary(model, box);
      chart.data.datasets[2].backgroundColor = data.test.points.map((point) => COLOURS[predict(model, point) > 0.5 ? 1 : 0]);
      chart.update("none");
      tiles.forEach(({ tile, caption, i }) => {
        const said = predict(model, data.test.points[i]) > 0.5 ? 1 : 0;
        caption.textContent = names[said];
        tile.classList.toggle("wrong", said !== data.test.labels[i]);
      });
      status.textContent = t("lesson.intro-ai.status", { step, steps, loss: formatNumber(loss, { maximumFractionDigits: 3 }),
        train: percent(accuracy(model, data.train.points, data.train.labels), 0) });
      await new Promise((resolve) => { setTimeout(resolve, ctx.quick ? 0 : 40); });
      if (mine !== run) return;
    }
    const trainAccuracy = accuracy(model, data.train.points, data.train.labels);
    const testAccuracy = accuracy(model, data.test.points, data.test.labels);
    status.textContent = t("lesson.intro-ai.finished", { steps, n: data.train.points.length, train: percent(trainAccuracy, 0),
      m: data.test.points.length, test: percent(testAccuracy, 0) });
    Object.assign(ctx.shared, { model, data, names });
    ctx.shared.trained?.();
    root.dataset.result = JSON.stringify({ train_accuracy: trainAccuracy, test_accuracy: testAccuracy, loss });
    // Only the easy default pair is held to a high bar; the harder pairs show where two numbers are not enough.
    root.dataset.expect = JSON.stringify(select.value === PAIRS[0] ? { train_accuracy: [0.8, 1], test_accuracy: [0.75, 1], loss: [0, 0.6] }
      : { train_accuracy: [0.5, 1], test_accuracy: [0.4, 1] });
    root.dataset.state = "done";
    again.disabled = false;
  }
  select.addEventListener("change", () => train().catch((error) => fail(root, status, error)));
  again.addEventListener("click", () => train().catch((error) => fail(root, status, error)));
  await train();
}

function fail(root, status, error) {
  status.textContent = error.message;
  status.classList.add("text-danger");
  root.dataset.state = "error";
}

/** Predict-then-reveal: guess what the trained classifier will say about a photo it never saw. */
export async function exercise(root, ctx) {
  const { t } = ctx;
  const question = element("div", { className: "d-flex flex-wrap gap-3 align-items-center" });
  const verdict = element("p", { className: "mt-2 mb-1", attrs: { "aria-live": "polite" } });
  const next = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("lesson.intro-ai.another"), attrs: { type: "button" } });
  const score = element("p", { className: "small text-body-secondary mb-0" });
  root.append(question, verdict, next, score);
  let index = -1;
  let right = 0;
  let answered = 0;

  function ask() {
    const { data, names, model } = ctx.shared;
    index = (index + 1) % data.test.points.length;
    const [width, height] = data.test.points[index];
    verdict.textContent = "";
    const buttons = names.map((name, label) => element("button", { className: "btn btn-outline-primary btn-sm", text: name,
      attrs: { type: "button", "data-answer": String(label) } }));
    buttons.forEach((button, label) => button.addEventListener("click", () => {
      const p = predict(model, data.test.points[index]);
      const said = p > 0.5 ? 1 : 0;
      answered += 1;
      right += said === label;
      buttons.forEach((other) => { other.disabled = true; });
      verdict.className = `mt-2 mb-1 ${said === label ? "text-success" : "text-danger"}`;
      verdict.textContent = t(said === label ? "lesson.intro-ai.right" : "lesson.intro-ai.wrong", {
        said: names[said], p: percent(said ? p : 1 - p, 0), truth: names[data.test.labels[index]],
        width: formatNumber(width, { maximumFractionDigits: 2 }), height: formatNumber(height, { maximumFractionDigits: 2 }) })
        + " " + t(said === data.test.labels[index] ? "lesson.intro-ai.model_right" : "lesson.intro-ai.model_wrong");
      score.textContent = t("lesson.intro-ai.score", { right, answered });
      if (right >= 3) ctx.complete();
    }));
    question.replaceChildren(thumbnail(data.test.images[index], t("lesson.intro-ai.mystery")),
      element("span", { text: t("lesson.intro-ai.question", { width: formatNumber(width, { maximumFractionDigits: 2 }),
        height: formatNumber(height, { maximumFractionDigits: 2 }) }) }), ...buttons);
    question.querySelector("canvas").classList.add("garment-big");
  }
  next.addEventListener("click", ask);
  if (!ctx.shared.model) await new Promise((resolve) => { ctx.shared.trained = resolve; });
  ask();
  root.dataset.state = "ready";
}
