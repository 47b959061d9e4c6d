// Active learning lesson: the labels-vs-accuracy curves measured on real Fashion-MNIST embeddings of the
// served model (random vs uncertainty sampling, benchmarks/bench_active.py), and the bundled real photos in
// the order the labelling queue would show them (most uncertain first). /api/v1/lessons/active-learning.
import { element, labelText } from "../render.js";
import { axis, block, chart, choiceExercise, done, failed, fixed, pct, smallTable } from "../model-lessons.js";

const URL_ACTIVE = "/api/v1/lessons/active-learning";
const QUEUE_ROWS = 8;

function curveChart(parent, ctx, curve, sameModel) {
  parent.append(block(ctx.t("lesson.active-learning.curve_title"), ctx.t("lesson.active-learning.curve_text", {
    pool: curve.pool.toLocaleString(ctx.lang), test: curve.test.toLocaleString(ctx.lang), seeds: curve.seeds,
    model: `${curve.model.name} ${curve.model.version}`, date: curve.measured.slice(0, 10), command: curve.command })));
  if (!sameModel) parent.append(element("p", { className: "small alert alert-warning", text: ctx.t("lesson.active-learning.other_model") }));
  chart(parent, {
    type: "line",
    data: { labels: curve.labels, datasets: [
      { label: ctx.t("lesson.active-learning.random"), data: curve.accuracy.random.map((a) => 100 * a), borderColor: "#6c757d", backgroundColor: "#6c757d" },
      { label: ctx.t("lesson.active-learning.margin"), data: curve.accuracy.margin.map((a) => 100 * a), borderColor: "#0d6efd", backgroundColor: "#0d6efd" },
    ] },
    options: { scales: { x: axis(ctx.t("lesson.active-learning.labels_axis")), y: axis(ctx.t("lesson.active-learning.accuracy_axis")) } },
  }, ctx.t("lesson.active-learning.curve_title"));
  if (curve.savings?.length) {
    parent.append(smallTable([
      [ctx.t("lesson.active-learning.target"), ctx.t("lesson.active-learning.random_needs"), ctx.t("lesson.active-learning.margin_needs"), ctx.t("lesson.active-learning.saved")],
      ...curve.savings.map((row) => [pct(row.accuracy), String(row.random), fixed(row.margin, 0), pct(1 - row.margin / row.random, 0)]),
    ]));
  }
}

function queueTable(parent, ctx, queue) {
  parent.append(block(ctx.t("lesson.active-learning.queue_title"), ctx.t("lesson.active-learning.queue_text", { count: queue.length })));
  const thumb = (name) => element("img", { className: "lesson-thumb", attrs: { src: `/api/v1/lessons/samples/${name}`, alt: name, loading: "lazy" } });
  parent.append(smallTable([
    ["#", ctx.t("lesson.models.photo"), ctx.t("lesson.active-learning.truth"), ctx.t("lesson.active-learning.prediction"), ctx.t("lesson.active-learning.uncertainty")],
    ...queue.slice(0, QUEUE_ROWS).map((row, i) => [String(i + 1), element("span", {}, thumb(row.name), element("span", { className: "d-block small", text: row.name })),
      labelText(row.truth), `${labelText(row.label)} (${pct(row.confidence)})`, fixed(row.margin, 3)]),
  ]));
}

export async function mount(root, ctx) {
  try {
    const body = await ctx.api(URL_ACTIVE);
    ctx.shared.active = body;
    curveChart(root, ctx, body.curve, body.measured_on_served_model);
    queueTable(root, ctx, body.queue);
    const { labels, accuracy } = body.curve;
    done(root, { first_labels: labels[0], last_labels: labels.at(-1), random_last: accuracy.random.at(-1),
      margin_last: accuracy.margin.at(-1), random_first: accuracy.random[0], queue: body.queue.length,
      queue_top_uncertainty: body.queue[0].margin },
    { random_last: [0.5, 1], margin_last: [0.5, 1], random_first: [0.2, 0.95], queue: [1, 100], queue_top_uncertainty: [0, 1] });
  } catch (error) {
    failed(root, ctx, error);
  }
}

/** Which of four photos would the queue ask you to label first? (the most uncertain one, by the server's margin) */
export async function exercise(root, ctx) {
  const { queue } = ctx.shared.active || await ctx.api(URL_ACTIVE);
  const picks = [queue[0], queue[Math.floor(queue.length / 3)], queue[Math.floor((2 * queue.length) / 3)], queue.at(-1)];
  const order = [2, 0, 3, 1].map((i) => picks[i]);  // the right one is not always first
  const letters = ["A", "B", "C", "D"];
  root.append(element("div", { className: "d-flex flex-wrap gap-3 mb-2" }, ...order.map((row, i) => element("figure",
    { className: "figure mb-0 text-center" }, element("img", { className: "lesson-photo rounded border",
      attrs: { src: `/api/v1/lessons/samples/${row.name}`, alt: row.name } }),
    element("figcaption", { className: "figure-caption small", text: `${letters[i]} · ${row.name.split("/").at(-1)}` })))));
  const options = order.map((row, i) => ({ value: row.name, text: letters[i] }));
  choiceExercise(root, ctx, ctx.t("lesson.active-learning.question"), options, (name) => ({
    right: name === queue[0].name,
    explanation: ctx.t("lesson.active-learning.explain", { name: queue[0].name, margin: fixed(queue[0].margin, 3),
      label: labelText(queue[0].label), confidence: pct(queue[0].confidence),
      last: queue.at(-1).name, last_margin: fixed(queue.at(-1).margin, 3) }),
  }));
}
