// Anomalies and explanations lesson: the served model's own answers from /api/v1/predict?explain=1&anomaly=1
// (app/analysis.py, app/explain.py, models/anomaly.py) for the student's photo or a bundled one: the class
// activation map, the unusual-regions map, the out-of-distribution score against its calibrated threshold
// and the image-quality checks. Nothing is stored (store=0).
import { element, labelText } from "../render.js";
import { axis, block, chart, choiceExercise, done, failed, fixed, pct, photoChooser, photoForm, post, smallTable } from "../model-lessons.js";

const URL_PREDICT = "/api/v1/predict?explain=1&anomaly=1&store=0";
const OOD_SAMPLE = "skimage/coffee";

async function analyse(ctx, photo) {
  return (await post(ctx, URL_PREDICT, await photoForm(photo))).results[0];
}

function figure(src, caption) {
  return element("figure", { className: "figure mb-0 lesson-figure" },
    element("img", { className: "figure-img img-fluid rounded border", attrs: { src, alt: caption } }),
    element("figcaption", { className: "figure-caption small", text: caption }));
}

function show(parent, ctx, result) {
  const anomalies = result.anomalies;
  const ood = anomalies.out_of_distribution;
  const regions = anomalies.unusual_regions;
  const answer = result.unknown ? labelText("unknown") : `${labelText(result.label)} (${pct(result.confidence)})`;
  parent.replaceChildren(element("p", { className: "mb-2", text: ctx.t("lesson.anomalies-explanations.answer", { answer }) }));
  const maps = element("div", { className: "row g-3 mb-2" });
  if (result.explanation) {
    maps.append(element("div", { className: "col-12 col-md-6" }, figure(result.explanation.overlay,
      ctx.t("lesson.anomalies-explanations.cam_caption", { label: labelText(result.explanation.class) }))));
  }
  if (regions) {
    maps.append(element("div", { className: "col-12 col-md-6" }, figure(regions.overlay, ctx.t("lesson.anomalies-explanations.regions_caption", {
      score: fixed(regions.score, 1), threshold: fixed(regions.threshold, 1), verdict: ctx.t(regions.anomalous ? "lesson.anomalies-explanations.unusual" : "lesson.anomalies-explanations.usual") }))));
  }
  parent.append(maps);
  if (!ood) {
    parent.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.anomalies-explanations.not_calibrated") }));
    return null;
  }
  parent.append(block(ctx.t("lesson.anomalies-explanations.ood_title"), ctx.t("lesson.anomalies-explanations.ood_text", {
    method: ood.method, score: fixed(ood.score, 2), threshold: fixed(ood.threshold, 2),
    verdict: ctx.t(ood.anomalous ? "lesson.anomalies-explanations.unusual" : "lesson.anomalies-explanations.usual"), reason: ood.reason })));
  chart(parent, {
    type: "bar",
    data: { labels: [ctx.t("lesson.anomalies-explanations.score"), ctx.t("lesson.anomalies-explanations.threshold")],
      datasets: [{ label: ood.method, data: [ood.score, ood.threshold], backgroundColor: [ood.anomalous ? "#dc3545" : "#198754", "#6c757d"] }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: axis(ctx.t("lesson.anomalies-explanations.score_axis", { method: ood.method })) } },
  }, ctx.t("lesson.anomalies-explanations.ood_title"));
  parent.append(block(ctx.t("lesson.anomalies-explanations.quality_title")), smallTable([
    [ctx.t("lesson.anomalies-explanations.check"), ctx.t("lesson.anomalies-explanations.value"), ctx.t("lesson.anomalies-explanations.limit"), ctx.t("lesson.anomalies-explanations.flagged")],
    ...anomalies.quality.checks.map((check) => [ctx.t(`lesson.anomalies-explanations.quality.${check.check}`), fixed(check.value, 1),
      `${check.direction === "below" ? "<" : ">"} ${fixed(check.threshold, 0)}`, ctx.t(check.flagged ? "lesson.models.yes" : "lesson.models.no")]),
  ]));
  return ood;
}

export async function mount(root, ctx) {
  try {
    const box = element("div");
    const run = async (photo) => {
      box.replaceChildren(element("p", { className: "small text-body-secondary", text: ctx.t("learn.loading") }));
      const result = await analyse(ctx, photo);
      return { result, ood: show(box, ctx, result) };
    };
    const photo = await photoChooser(root, ctx, (chosen) => run(chosen).catch((error) => failed(box, ctx, error)));
    root.append(box);
    const { result, ood } = await run(photo);
    const shown = { confidence: result.confidence };
    if (ood) Object.assign(shown, { ood_score: ood.score, ood_threshold: ood.threshold });
    if (result.anomalies.unusual_regions) shown.regions_score = result.anomalies.unusual_regions.score;
    done(root, shown, { confidence: [0, 1], regions_score: [0, 10000] });
  } catch (error) {
    failed(root, ctx, error);
  }
}

/** Predict, then reveal: will the out-of-distribution score flag a photo of a cup of coffee? */
export async function exercise(root, ctx) {
  const photos = await ctx.api("/api/v1/lessons/samples");
  const coffee = photos.photos.find((photo) => photo.name === OOD_SAMPLE) || photos.photos.at(-1);
  root.append(element("img", { className: "lesson-thumb mb-2", attrs: { src: coffee.url, alt: coffee.name } }));
  choiceExercise(root, ctx, ctx.t("lesson.anomalies-explanations.question"), [
    { value: true, text: ctx.t("lesson.anomalies-explanations.yes_unusual") }, { value: false, text: ctx.t("lesson.anomalies-explanations.no_usual") },
  ], async (value) => {
    const result = await analyse(ctx, coffee);
    const ood = result.anomalies.out_of_distribution;
    if (!ood) return { right: false, explanation: ctx.t("lesson.anomalies-explanations.not_calibrated") };
    return { right: value === ood.anomalous, explanation: ctx.t("lesson.anomalies-explanations.explain", {
      score: fixed(ood.score, 2), threshold: fixed(ood.threshold, 2),
      verdict: ctx.t(ood.anomalous ? "lesson.anomalies-explanations.unusual" : "lesson.anomalies-explanations.usual"),
      answer: result.unknown ? labelText("unknown") : labelText(result.label) }) };
  });
}
