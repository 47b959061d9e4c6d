// Overfitting lesson: the same head trained on 20 and on 500 real Fashion-MNIST photos (embeddings of the served
// model, GET /api/v1/lessons/fashion), validated on 200 other photos; then the 20-photo run again with dropout,
// with augmented copies (the training recipe, GET /api/v1/lessons/fashion/augmented) and with early stopping.
// Everything is trained here, live, with TF.js; the curves are Chart.js.
import { element, formatNumber, percent } from "../render.js";
import { accuracy, fashionSet, lineChart, pick, predictHead, progressBar, trainHead, decodeArray } from "../lesson_data.js";

const FULL = { small: 20, large: 500, validation: 200, copies: 4, epochs: 40 };
const QUICK = { small: 20, large: 60, validation: 50, copies: 1, epochs: 15 };
const COLOURS = { small: "#d62728", large: "#1f77b4", dropout: "#ff7f0e", augment: "#2ca02c", early: "#9467bd" };
const range = (n) => Array.from({ length: n }, (_, i) => i);
const signedPoints = (difference) => `${difference >= 0 ? "+" : "−"}${formatNumber(Math.abs(100 * difference), { maximumFractionDigits: 1 })}`;

/** The runs compared: which photos, and what changes. */
function runs(sizes) {
  return [
    { key: "small", rows: sizes.small },
    { key: "large", rows: sizes.large },
    { key: "dropout", rows: sizes.small, dropout: 0.5 },
    { key: "augment", rows: sizes.small, augmented: true },
    { key: "early", rows: sizes.small, patience: 5 },
  ];
}

/** Embeddings (and labels) of the run's training photos; the augmented copies are added after the originals. */
function trainingSet(run, train, augmented) {
  const set = pick(train, range(run.rows));
  if (!run.augmented) return set;
  const x = new Float32Array(set.x.length + augmented.x.length);
  x.set(set.x);
  x.set(augmented.x, set.x.length);
  return { x, labels: [...set.labels, ...augmented.labels] };
}

async function augmentedCopies(ctx, sizes) {
  const body = await ctx.api(`/api/v1/lessons/fashion/augmented?count=${sizes.small}&copies=${sizes.copies}`);
  const { values } = decodeArray(body.embeddings);
  return { x: values, labels: Array.from({ length: sizes.copies }, () => body.labels).flat(), cached: body.cached };
}

/** Train one run, drawing its curves as it goes; the accuracies of the kept model on both sets. */
async function train(ctx, run, data, charts, report) {
  const set = trainingSet(run, data.train, data.augmented);
  const { dimension, classes } = data.train;
  const lines = [];
  if (charts[run.key]) {
    for (const [chart, show] of charts[run.key]) {
      const name = ctx.t(`lesson.overfitting.run_${run.key}`, data.sizes);
      if (show.includes("train")) lines.push(push(chart, `${name} · ${ctx.t("lesson.overfitting.train")}`, COLOURS[run.key], true, "acc"));
      if (show.includes("val")) lines.push(push(chart, `${name} · ${ctx.t("lesson.overfitting.validation")}`, COLOURS[run.key], false, "val_acc"));
    }
  }
  const result = await trainHead(set, {
    dimension, classes: classes.length, validation: data.validation, epochs: data.sizes.epochs, batchSize: 32, learningRate: 3e-3,
    dropout: run.dropout || 0, patience: run.patience || 0,
    onEpoch: (epoch, logs) => {
      report(epoch + 1);
      for (const line of lines) {
        line.dataset.data.push(logs[line.key] ?? logs[line.key === "acc" ? "accuracy" : "val_accuracy"]);
        line.chart.update("none");
      }
    },
  });
  const trained = pick(data.train, range(run.rows));
  const scores = {
    train: accuracy(predictHead(result.model, trained, dimension), trained.labels),
    validation: accuracy(predictHead(result.model, data.validation, dimension), data.validation.labels),
    epochs: run.patience ? result.bestEpoch + 1 : data.sizes.epochs,
    stopped: result.stoppedEpoch,
    images: set.labels.length,
  };
  result.model.dispose();
  return scores;
}

function push(chart, label, colour, dashed, key) {
  const dataset = { label, data: [], borderColor: colour, backgroundColor: colour, borderDash: dashed ? [6, 4] : [],
    pointRadius: 0, borderWidth: 2, tension: 0.2 };
  chart.data.datasets.push(dataset);
  return { chart, dataset, key };
}

function resultsTable(ctx, results, sizes) {
  const head = ["run", "images", "train", "validation", "gap", "epochs"].map((key) =>
    element("th", { text: ctx.t(`lesson.overfitting.col_${key}`), attrs: { scope: "col" } }));
  const rows = runs(sizes).map((run) => {
    const r = results[run.key];
    return element("tr", {},
      element("th", { text: ctx.t(`lesson.overfitting.run_${run.key}`, sizes), attrs: { scope: "row" } }),
      element("td", { text: formatNumber(r.images) }), element("td", { text: percent(r.train) }),
      element("td", { text: percent(r.validation) }),
      element("td", { className: "text-nowrap", text: `${formatNumber(100 * (r.train - r.validation), { maximumFractionDigits: 1 })} pp` }),
      element("td", { text: !run.patience ? formatNumber(r.epochs)
        : ctx.t(r.stopped < sizes.epochs ? "lesson.overfitting.stopped" : "lesson.overfitting.not_stopped", { best: r.epochs, stopped: r.stopped }) }));
  });
  return element("div", { className: "table-responsive" },
    element("table", { className: "table table-sm align-middle" }, element("thead", {}, element("tr", {}, ...head)), element("tbody", {}, ...rows)));
}

export async function mount(root, ctx) {
  const sizes = ctx.quick ? QUICK : FULL;
  const started = performance.now();
  const progress = progressBar();
  root.append(element("p", { className: "small", text: ctx.t("lesson.overfitting.intro", sizes) }), progress.node);
  const total = sizes.large + sizes.validation;
  const fetching = (offset) => (done) => progress.update(offset + done, total,
    ctx.t("lesson.overfitting.fetching", { done: offset + done, total }));
  const trainSet = await fashionSet(ctx, "train", sizes.large, fetching(0));
  const validationSet = await fashionSet(ctx, "validation", sizes.validation, fetching(sizes.large));
  progress.update(total, total, ctx.t("lesson.overfitting.fetching_augmented", { copies: sizes.copies, small: sizes.small }));
  const augmented = await augmentedCopies(ctx, sizes);
  const fetchSeconds = (performance.now() - started) / 1000;
  const data = { train: trainSet, validation: pick(validationSet, range(sizes.validation)), augmented, sizes };

  const epochs = range(sizes.epochs).map((e) => e + 1);
  const axes = { labels: epochs, datasets: [], xLabel: ctx.t("lesson.overfitting.epoch"), yLabel: ctx.t("lesson.overfitting.accuracy") };
  root.append(element("h3", { className: "h6 mt-3", text: ctx.t("lesson.overfitting.chart_size", sizes) }));
  const sizeChart = lineChart(root, axes);
  root.append(element("h3", { className: "h6 mt-3", text: ctx.t("lesson.overfitting.chart_remedies", sizes) }));
  const remedyChart = lineChart(root, { ...axes, datasets: [] });
  const charts = {
    small: [[sizeChart, ["train", "val"]], [remedyChart, ["val"]]],
    large: [[sizeChart, ["train", "val"]]],
    dropout: [[remedyChart, ["val"]]], augment: [[remedyChart, ["val"]]], early: [[remedyChart, ["val"]]],
  };
  const results = {};
  const list = runs(sizes);
  for (const [index, run] of list.entries()) {
    const report = (epoch) => progress.update(index * sizes.epochs + epoch, list.length * sizes.epochs,
      ctx.t("lesson.overfitting.training", { run: index + 1, runs: list.length, name: ctx.t(`lesson.overfitting.run_${run.key}`, sizes), epoch, epochs: sizes.epochs }));
    results[run.key] = await train(ctx, run, data, charts, report);
  }
  const seconds = (performance.now() - started) / 1000;
  progress.update(1, 1, ctx.t("lesson.overfitting.finished", {
    seconds: formatNumber(seconds, { maximumFractionDigits: 1 }), fetch: formatNumber(fetchSeconds, { maximumFractionDigits: 1 }),
    cache: ctx.t(trainSet.cached && validationSet.cached && augmented.cached ? "lesson.overfitting.cached" : "lesson.overfitting.computed") }));
  root.append(resultsTable(ctx, results, sizes),
    element("p", { className: "small", text: ctx.t("lesson.overfitting.reading", {
      small_gap: formatNumber(100 * (results.small.train - results.small.validation), { maximumFractionDigits: 0 }),
      large_gap: formatNumber(100 * (results.large.train - results.large.validation), { maximumFractionDigits: 0 }),
      small: sizes.small, large: sizes.large, validation: sizes.validation }) }),
    element("p", { className: "small", text: ctx.t("lesson.overfitting.remedies", {
      small: sizes.small, large: sizes.large, more: signedPoints(results.large.validation - results.small.validation),
      ...Object.fromEntries(["dropout", "augment", "early"].map((key) => [key, signedPoints(results[key].validation - results.small.validation)])) }) }),
    element("p", { className: "small text-body-secondary", text: ctx.t("lesson.overfitting.source", { model: `${trainSet.model.name} ${trainSet.model.version}`, dimension: trainSet.dimension }) }));
  ctx.shared.overfitting = { data, results };
  root.dataset.result = JSON.stringify({
    small_train: results.small.train, small_validation: results.small.validation, large_validation: results.large.validation,
    small_gap: results.small.train - results.small.validation, large_gap: results.large.train - results.large.validation,
    dropout_validation: results.dropout.validation, augment_validation: results.augment.validation,
    early_validation: results.early.validation, seconds });
  root.dataset.expect = JSON.stringify({
    small_train: [0.8, 1], small_validation: [0.15, 0.85], large_validation: ctx.quick ? [0.35, 1] : [0.55, 1],
    small_gap: [0.1, 0.85], seconds: [0, 60] });
  root.dataset.state = "done";
}

/** Predict-then-reveal: the student picks a training-set size and dropout, guesses the validation accuracy,
 * then trains it live and compares. */
export async function exercise(root, ctx) {
  const sizes = ctx.quick ? QUICK : FULL;
  const choices = [20, 50, 100, 200, 500].filter((n) => n <= sizes.large);
  const size = element("select", { className: "form-select form-select-sm", attrs: { id: "overfit-size" } },
    ...choices.map((n) => element("option", { text: formatNumber(n), attrs: { value: String(n) } })));
  const dropout = element("select", { className: "form-select form-select-sm", attrs: { id: "overfit-dropout" } },
    ...[0, 0.2, 0.5].map((p) => element("option", { text: formatNumber(p), attrs: { value: String(p) } })));
  const guess = element("input", { className: "form-control form-control-sm", attrs: { id: "overfit-guess", type: "number", min: "0", max: "100", step: "1", value: "50" } });
  const button = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.overfitting.ex_run"), attrs: { type: "button" } });
  const answer = element("div", { className: "mt-2", attrs: { role: "status" } });
  const field = (id, label, input) => element("div", { className: "col-6 col-md-3" },
    element("label", { className: "form-label small", text: label, attrs: { for: id } }), input);
  root.append(element("p", { text: ctx.t("lesson.overfitting.ex_question", { validation: sizes.validation }) }),
    element("div", { className: "row g-2 align-items-end" },
      field("overfit-size", ctx.t("lesson.overfitting.ex_size"), size), field("overfit-dropout", ctx.t("lesson.overfitting.ex_dropout"), dropout),
      field("overfit-guess", ctx.t("lesson.overfitting.ex_guess"), guess), element("div", { className: "col-6 col-md-3" }, button)),
    answer);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const data = ctx.shared.overfitting?.data;
      if (!data) throw new Error(ctx.t("lesson.overfitting.ex_wait"));
      const rows = Number(size.value);
      answer.replaceChildren(element("p", { className: "small", text: ctx.t("lesson.overfitting.ex_training") }));
      const scores = await train(ctx, { key: "exercise", rows, dropout: Number(dropout.value) }, data, {}, () => {});
      const predicted = Number(guess.value) / 100;
      const close = Math.abs(predicted - scores.validation) <= 0.1;
      answer.replaceChildren(element("div", { className: `alert ${close ? "alert-success" : "alert-warning"} mb-0` },
        element("strong", { text: ctx.t(close ? "lesson.overfitting.ex_close" : "lesson.overfitting.ex_far") }), " ",
        ctx.t("lesson.overfitting.ex_explain", { rows, guess: percent(predicted, 0), validation: percent(scores.validation),
          train: percent(scores.train), gap: formatNumber(100 * (scores.train - scores.validation), { maximumFractionDigits: 0 }) })));
      if (close) ctx.complete?.();
    } catch (error) {
      answer.replaceChildren(element("div", { className: "alert alert-danger mb-0", text: error.message }));
    } finally {
      button.disabled = false;
    }
  });
  root.dataset.state = "ready";
}
