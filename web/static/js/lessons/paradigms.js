// Lesson paradigms: supervised vs unsupervised vs reinforcement learning on the same real Fashion-MNIST photos,
// as measured by `riim paradigms` (training/paradigms.py, GET /api/v1/paradigms): accuracy per number of labels
// or right/wrong answers, what k-means found without any label, and the bandit's regret.
import { element } from "../render.js";
import { loadGarments, thumbnail } from "./garments.js";
import { axis, block as plainBlock, chart, choiceExercise, done, failed, fixed, pct, smallTable } from "../model-lessons.js";

/** A section heading with room above it. */
function block(title, text) {
  const section = plainBlock(title, text);
  section.classList.add("mt-3");
  return section;
}

const URL_RESULTS = "/api/v1/paradigms";
const METHODS = [
  { key: "supervised", colour: "#0d6efd" },
  { key: "kmeans", colour: "#198754" },
  { key: "linucb", colour: "#fd7e14" },
  { key: "epsilon_greedy", colour: "#dc3545" },
];
const TABLE_SIZES = [100, 500, 2000];

const mean = (summary, method, n) => summary[method].accuracy[String(n)][0];
const spread = (summary, method, n) => summary[method].accuracy[String(n)][1];

function results(ctx) {
  ctx.shared.paradigms ??= ctx.api(URL_RESULTS);
  return ctx.shared.paradigms;
}

function curves(parent, ctx, body) {
  const sizes = body.sizes;
  parent.append(block(ctx.t("lesson.paradigms.chart_title"), ctx.t("lesson.paradigms.chart_text",
    { pool: body.data.pool.toLocaleString(ctx.lang), test: body.data.test.toLocaleString(ctx.lang), seeds: body.seeds.length })));
  chart(parent, {
    type: "line",
    data: { labels: sizes, datasets: METHODS.map(({ key, colour }) => ({
      label: ctx.t(`lesson.paradigms.method.${key}`), borderColor: colour, backgroundColor: colour,
      data: sizes.map((n) => mean(body.summary, key, n)) })) },
    options: { scales: { x: { type: "logarithmic", afterBuildTicks: (scale) => { scale.ticks = sizes.map((value) => ({ value })); },
      ...axis(ctx.t("lesson.paradigms.x_axis")) },
      y: { min: 0, max: 1, ...axis(ctx.t("lesson.paradigms.y_axis")) } } },
  }, ctx.t("lesson.paradigms.chart_title"));
}

function comparison(parent, ctx, body) {
  const s = body.summary;
  const sizes = TABLE_SIZES.filter((n) => body.sizes.includes(n));
  const cell = (method, n) => `${pct(mean(s, method, n))} ± ${fixed(spread(s, method, n) * 100, 1)}`;
  parent.append(block(ctx.t("lesson.paradigms.table_title"), ctx.t("lesson.paradigms.table_text")), smallTable([
    [ctx.t("lesson.paradigms.n"), ...METHODS.map(({ key }) => ctx.t(`lesson.paradigms.short.${key}`)), ctx.t("lesson.paradigms.regret")],
    ...sizes.map((n) => [n.toLocaleString(ctx.lang), ...METHODS.map(({ key }) => cell(key, n)),
      `${fixed(s.linucb.regret[String(n)][0], 0)} / ${fixed(s.epsilon_greedy.regret[String(n)][0], 0)}`]),
  ]), element("p", { className: "small text-body-secondary", text: ctx.t("lesson.paradigms.clusters_score", {
    ari: fixed(s.kmeans.ari[0], 2), purity: pct(s.kmeans.purity[0]), gari: fixed(s.gmm.ari[0], 2), gpurity: pct(s.gmm.purity[0]) }) }));
}

function clusters(parent, ctx, body) {
  parent.append(block(ctx.t("lesson.paradigms.clusters_title"), ctx.t("lesson.paradigms.clusters_text")));
  const list = element("div", { className: "paradigm-clusters" });
  for (const cluster of body.clusters) {
    list.append(element("figure", { className: "mb-1" },
      element("img", { className: "paradigm-strip", attrs: { src: cluster.grid, alt: ctx.t("lesson.paradigms.cluster_alt", { k: cluster.cluster + 1 }) } }),
      element("figcaption", { className: "small text-body-secondary", text: ctx.t("lesson.paradigms.cluster_caption", {
        k: cluster.cluster + 1, size: cluster.size.toLocaleString(ctx.lang), share: pct(cluster.top_share, 0),
        name: ctx.t(`label.${cluster.top_class}`) }) })));
  }
  parent.append(list);
}

function uploads(parent, ctx, body) {
  const found = body.uploads;
  if (!found) return;
  parent.append(block(ctx.t("lesson.paradigms.uploads_title"), found.groups.length
    ? ctx.t("lesson.paradigms.uploads_text", { count: found.count, groups: found.groups.length })
    : ctx.t("lesson.paradigms.uploads_none")));
  parent.append(element("div", { className: "d-flex flex-column gap-2" }, ...found.groups.map((group, i) =>
    element("div", { className: "d-flex flex-wrap align-items-center gap-1" },
      element("span", { className: "small text-body-secondary me-1", text: ctx.t("lesson.paradigms.uploads_group", { k: i + 1, size: group.size }) }),
      ...group.thumbnails.map((src) => element("img", { className: "paradigm-upload rounded", attrs: { src, alt: ctx.t("lesson.paradigms.upload_alt", { k: i + 1 }) } }))))));
}

/** Before `riim paradigms` has run on this server: say how to run it, and show the photos it learns from. */
async function notComputed(root, ctx) {
  root.append(element("div", { className: "alert alert-info small", attrs: { role: "status" }, text: ctx.t("lesson.paradigms.missing") }));
  const garments = await loadGarments(ctx, "sneaker,bag", () => [0, 0], 4, 2);
  root.append(element("div", { className: "d-flex flex-wrap gap-1" }, ...garments.train.images.map((pixels, i) =>
    thumbnail(pixels, ctx.t(`label.${garments.classes[garments.train.labels[i]]}`)))));
  done(root, {});
}

export async function mount(root, ctx) {
  try {
    const body = await results(ctx).catch((error) => { if (error.status === 404) return null; throw error; });
    if (!body) return notComputed(root, ctx);
    curves(root, ctx, body);
    comparison(root, ctx, body);
    clusters(root, ctx, body);
    uploads(root, ctx, body);
    const s = body.summary;
    const last = Math.max(...body.sizes);
    done(root, { supervised: mean(s, "supervised", last), linucb: mean(s, "linucb", last), kmeans_ari: s.kmeans.ari[0] },
      { supervised: [0.15, 1], linucb: [0.1, 1], kmeans_ari: [-1, 1] });
  } catch (error) {
    failed(root, ctx, error);
  }
}

export async function exercise(root, ctx) {
  try {
    const body = await results(ctx).catch((error) => { if (error.status === 404) return null; throw error; });
    if (!body) {  // no measurements on this server yet: the question about what each method is given
      choiceExercise(root, ctx, ctx.t("lesson.paradigms.question_missing"),
        ["supervised", "kmeans", "linucb"].map((key) => ({ value: key, text: ctx.t(`lesson.paradigms.method.${key}`) })),
        (value) => ({ right: value === "linucb", explanation: ctx.t("lesson.paradigms.answer_missing") }));
      return;
    }
    const n = body.sizes.includes(100) ? 100 : body.sizes[0];
    const options = ["supervised", "kmeans", "linucb"];
    const best = options.reduce((a, b) => (mean(body.summary, a, n) >= mean(body.summary, b, n) ? a : b));
    choiceExercise(root, ctx, ctx.t("lesson.paradigms.question", { n }),
      options.map((key) => ({ value: key, text: ctx.t(`lesson.paradigms.method.${key}`) })),
      (value) => ({ right: value === best, explanation: ctx.t("lesson.paradigms.answer", {
        n, best: ctx.t(`lesson.paradigms.method.${best}`), accuracy: pct(mean(body.summary, best, n)),
        bandit: pct(mean(body.summary, "linucb", n)) }) }));
  } catch (error) {
    failed(root, ctx, error);
  }
}
