// Cross-validation lesson: k-fold and leave-one-out on real Fashion-MNIST photos (the served model's embeddings,
// GET /api/v1/lessons/fashion). Folds are stratified (every fold holds the same number of photos of each class)
// and drawn as a picture; one new head per fold is trained here with TF.js for a fixed number of epochs, as
// training/crossval.py does; per-fold accuracy in a Chart.js bar chart with the mean and the spread.
import { element, formatNumber, percent } from "../render.js";
import { accuracy, fashionSet, meanStd, pick, predictHead, progressBar, seededRandom, thumbnail, trainHead } from "../lesson_data.js";

const FULL = { rows: 100, looRows: 30, epochs: 30, folds: 5, learningRate: 5e-3 };
const QUICK = { rows: 40, looRows: 20, epochs: 15, folds: 4, learningRate: 5e-3 };  // leave-one-out needs 2+ photos per class
const FOLD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const range = (n) => Array.from({ length: n }, (_, i) => i);

/** Stratified folds: each class's photos shuffled (fixed seed) and dealt round-robin; fold number per photo. */
export function stratifiedFolds(labels, k, seed = 0) {
  const random = seededRandom(seed);
  const fold = new Array(labels.length);
  const classes = [...new Set(labels)];
  let next = 0;
  for (const label of classes) {
    const rows = labels.map((l, i) => (l === label ? i : -1)).filter((i) => i >= 0);
    for (let i = rows.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    for (const row of rows) { fold[row] = next % k; next += 1; }
  }
  return fold;
}

/** Train one head per fold on the other folds; the held-out accuracy of each. */
async function crossValidate(set, fold, k, { epochs, learningRate }, onFold) {
  const scores = [];
  const right = new Array(fold.length).fill(false);
  for (let f = 0; f < k; f += 1) {
    const heldOut = range(fold.length).filter((i) => fold[i] === f);
    const rest = range(fold.length).filter((i) => fold[i] !== f);
    const { model } = await trainHead(pick(set, rest), { dimension: set.dimension, classes: set.classes.length, epochs, learningRate, batchSize: 32, dropout: 0.2, seed: f });
    const test = pick(set, heldOut);
    const probabilities = predictHead(model, test, set.dimension);
    model.dispose();
    probabilities.forEach((row, i) => { right[heldOut[i]] = row.indexOf(Math.max(...row)) === test.labels[i]; });
    scores.push(accuracy(probabilities, test.labels));
    onFold(f + 1, k);
  }
  return { scores, right };
}

/** The photos as a grid (one row per class), each framed in its fold's colour, with a ✗ when its fold's model got it wrong. */
function foldPicture(ctx, set, fold, right, rows) {
  const grid = element("div", { className: "lesson-fold-grid", attrs: { role: "img", "aria-label": ctx.t("lesson.cross-validation.picture_label") } });
  const byClass = set.classes.map((_, label) => range(rows).filter((i) => set.labels[i] === label));
  for (const members of byClass) {
    const line = element("div", { className: "lesson-fold-row" });
    for (const row of members) {
      const cell = element("span", { className: `lesson-fold-cell${right && !right[row] ? " lesson-fold-wrong" : ""}`,
        attrs: { title: `${set.classes[set.labels[row]]} · ${ctx.t("lesson.cross-validation.fold")} ${fold[row] + 1}` } }, thumbnail(set, row));
      cell.style.borderColor = FOLD_COLOURS[fold[row] % FOLD_COLOURS.length];
      line.append(cell);
    }
    grid.append(line);
  }
  return grid;
}

/** Rounds × folds: in round r, fold r is held out (coloured) and the others train (grey). */
function roundsPicture(ctx, k) {
  const rows = range(k).map((round) => element("div", { className: "lesson-round" },
    element("span", { className: "lesson-round-name small", text: ctx.t("lesson.cross-validation.round", { n: round + 1 }) }),
    ...range(k).map((f) => {
      const block = element("span", { className: `lesson-round-block${f === round ? " lesson-round-held" : ""}`,
        text: f === round ? ctx.t("lesson.cross-validation.test") : ctx.t("lesson.cross-validation.train") });
      if (f === round) block.style.backgroundColor = FOLD_COLOURS[f % FOLD_COLOURS.length];
      return block;
    })));
  return element("div", { className: "lesson-rounds mb-2" }, ...rows);
}

function scoresChart(ctx, parent, scores, { mean, std }) {
  const canvas = element("canvas");
  parent.append(element("div", { className: "chart-canvas" }, canvas));
  return new globalThis.Chart(canvas, {
    data: {
      labels: scores.map((_, f) => `${ctx.t("lesson.cross-validation.fold")} ${f + 1}`),
      datasets: [
        { type: "bar", label: ctx.t("lesson.cross-validation.fold_accuracy"), data: scores, backgroundColor: scores.map((_, f) => FOLD_COLOURS[f % FOLD_COLOURS.length]) },
        { type: "line", label: ctx.t("lesson.cross-validation.mean_line", { mean: percent(mean), std: percent(std) }), data: scores.map(() => mean), borderColor: "#000", borderDash: [6, 4], pointRadius: 0 },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      scales: { y: { min: 0, max: 1, title: { display: true, text: ctx.t("lesson.cross-validation.accuracy_axis") }, ticks: { callback: (v) => formatNumber(v, { style: "percent" }) } } } },
  });
}

async function runKFold(ctx, box, set, k, sizes, progress) {
  const fold = stratifiedFolds(set.labels, k);
  box.replaceChildren(element("h3", { className: "h6", text: ctx.t("lesson.cross-validation.kfold_title", { k, rows: sizes.rows, per: sizes.rows / k }) }),
    roundsPicture(ctx, k));
  const { scores, right } = await crossValidate(set, fold, k, sizes, (done, total) =>
    progress.update(done, total, ctx.t("lesson.cross-validation.training_fold", { done, total, epochs: sizes.epochs })));
  const spread = meanStd(scores);
  box.append(foldPicture(ctx, set, fold, right, sizes.rows),
    element("p", { className: "small text-body-secondary", text: ctx.t("lesson.cross-validation.picture_caption") }));
  scoresChart(ctx, box, scores, spread);
  box.append(element("p", { className: "small", text: ctx.t("lesson.cross-validation.kfold_reading", {
    k, mean: percent(spread.mean), std: percent(spread.std), min: percent(Math.min(...scores)), max: percent(Math.max(...scores)) }) }));
  return { k, scores, ...spread };
}

async function runLeaveOneOut(ctx, box, set, sizes, progress) {
  const n = sizes.looRows;
  const subset = pick(set, range(n));
  const one = { ...set, x: subset.x, labels: subset.labels };
  const fold = range(n);
  box.replaceChildren(element("h3", { className: "h6", text: ctx.t("lesson.cross-validation.loo_title", { n, train: n - 1 }) }));
  const { scores, right } = await crossValidate(one, fold, n, sizes, (done, total) =>
    progress.update(done, total, ctx.t("lesson.cross-validation.training_loo", { done, total })));
  const spread = meanStd(scores);
  const strip = element("div", { className: "lesson-loo-strip" }, ...range(n).map((row) => {
    const cell = element("span", { className: `lesson-fold-cell${right[row] ? "" : " lesson-fold-wrong"}`,
      attrs: { title: `${set.classes[one.labels[row]]}: ${ctx.t(right[row] ? "lesson.cross-validation.right" : "lesson.cross-validation.wrong")}` } }, thumbnail(set, row));
    cell.style.borderColor = right[row] ? "#2ca02c" : "#d62728";
    return cell;
  }));
  box.append(strip, element("p", { className: "small", text: ctx.t("lesson.cross-validation.loo_reading", {
    n, right: scores.filter((s) => s === 1).length, mean: percent(spread.mean), std: percent(spread.std) }) }));
  return { n, scores, ...spread };
}

export async function mount(root, ctx) {
  const sizes = ctx.quick ? QUICK : FULL;
  const started = performance.now();
  const progress = progressBar();
  const choice = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "cv-folds" } },
    ...[2, 4, 5, 10].filter((k) => sizes.rows % k === 0).map((k) => element("option", { text: `k = ${k}`, attrs: { value: String(k) } })));
  choice.value = String(sizes.folds);
  const again = element("button", { className: "btn btn-outline-primary btn-sm", text: ctx.t("lesson.cross-validation.again"), attrs: { type: "button" } });
  const kfoldBox = element("div", { className: "mb-3" });
  const looBox = element("div");
  root.append(element("p", { className: "small", text: ctx.t("lesson.cross-validation.intro", { ...sizes, per_class: sizes.rows / 10 }) }), progress.node,
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
      element("label", { className: "small", text: ctx.t("lesson.cross-validation.choose"), attrs: { for: "cv-folds" } }), choice, again),
    kfoldBox, looBox);
  const set = await fashionSet(ctx, "train", sizes.rows, (done, total) =>
    progress.update(done, total, ctx.t("lesson.cross-validation.fetching", { done, total })));
  const kfold = await runKFold(ctx, kfoldBox, set, sizes.folds, sizes, progress);
  const loo = await runLeaveOneOut(ctx, looBox, set, sizes, progress);
  const seconds = (performance.now() - started) / 1000;
  progress.update(1, 1, ctx.t("lesson.cross-validation.finished", { seconds: formatNumber(seconds, { maximumFractionDigits: 1 }), model: `${set.model.name} ${set.model.version}` }));
  ctx.shared.crossValidation = { rows: sizes.rows, kfold, loo };
  root.dataset.result = JSON.stringify({ folds: kfold.k, kfold_mean: kfold.mean, kfold_std: kfold.std, loo_mean: loo.mean, loo_std: loo.std, seconds });
  root.dataset.expect = JSON.stringify({ kfold_mean: ctx.quick ? [0.3, 1] : [0.5, 1], kfold_std: [0, 0.3], loo_std: [0, 0.5], seconds: [0, 60] });
  root.dataset.state = "done";
  again.addEventListener("click", async () => {
    again.disabled = true;
    choice.disabled = true;
    try {
      ctx.shared.crossValidation.kfold = await runKFold(ctx, kfoldBox, set, Number(choice.value), sizes, progress);
      progress.update(1, 1, ctx.t("lesson.cross-validation.done_again"));
    } finally {
      again.disabled = false;
      choice.disabled = false;
    }
  });
}

/** How many photos does each of the k models train on, and how many trainings does leave-one-out need? */
export async function exercise(root, ctx) {
  const sizes = ctx.quick ? QUICK : FULL;
  const k = 5;
  const trainInput = element("input", { className: "form-control form-control-sm", attrs: { id: "cv-train", type: "number", min: "0", step: "1" } });
  const modelsInput = element("input", { className: "form-control form-control-sm", attrs: { id: "cv-models", type: "number", min: "0", step: "1" } });
  const check = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.cross-validation.ex_check"), attrs: { type: "button" } });
  const answer = element("div", { className: "mt-2", attrs: { role: "status" } });
  const field = (id, label, input) => element("div", { className: "col-12 col-md-5" },
    element("label", { className: "form-label small", text: label, attrs: { for: id } }), input);
  root.append(element("p", { text: ctx.t("lesson.cross-validation.ex_question", { rows: sizes.rows, k }) }),
    element("div", { className: "row g-2 align-items-end" },
      field("cv-train", ctx.t("lesson.cross-validation.ex_train", { k }), trainInput),
      field("cv-models", ctx.t("lesson.cross-validation.ex_models", { rows: sizes.rows }), modelsInput),
      element("div", { className: "col-12 col-md-2" }, check)),
    answer);
  check.addEventListener("click", () => {
    const train = sizes.rows - sizes.rows / k;
    const ok = Number(trainInput.value) === train && Number(modelsInput.value) === sizes.rows;
    answer.replaceChildren(element("div", { className: `alert ${ok ? "alert-success" : "alert-warning"} mb-0` },
      element("strong", { text: ctx.t(ok ? "lesson.cross-validation.ex_right" : "lesson.cross-validation.ex_wrong") }), " ",
      ctx.t("lesson.cross-validation.ex_explain", { rows: sizes.rows, k, held: sizes.rows / k, train, loo: sizes.rows })));
    if (ok) ctx.complete?.();
  });
  root.dataset.state = "ready";
}
