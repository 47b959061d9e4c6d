// Lesson autoencoders: the served autoencoder (training/autoencoder.py, ONNX Runtime behind
// POST /api/v1/autoencoder/reconstruct) rebuilds real Fashion-MNIST photos and real photos of other things;
// the reconstruction error against a threshold the student moves; the 2-D latent map stored with the model; and
// the honest out-of-distribution evaluation from its card, next to the image model's own scores.
import { element } from "../render.js";
import { axis, block as plainBlock, chart, choiceExercise, done, failed, fixed, pct, samples, smallTable } from "../model-lessons.js";
import { loadGarments, thumbnail } from "./garments.js";

/** A section heading with room above it. */
function block(title, text) {
  const section = plainBlock(title, text);
  section.classList.add("mt-3");
  return section;
}

const MODEL = "fashion-autoencoder";
const URL_RECONSTRUCT = "/api/v1/autoencoder/reconstruct";
const PHOTOS = ["skimage/astronaut", "skimage/coffee", "skimage/moon", "sklearn/china"];
const COLOURS = ["#0d6efd", "#6610f2", "#d63384", "#dc3545", "#fd7e14", "#ffc107", "#198754", "#20c997", "#0dcaf0", "#6c757d"];

/** The served version's card, or null when the model is not on this server yet. */
async function servedCard(ctx) {
  ctx.shared.aeCard ??= ctx.api(`/api/v1/models/${MODEL}`).then((body) =>
    body.versions.find((card) => card.version === body.current) ?? null,
  (error) => { if (error.status === 404) return null; throw error; });
  return ctx.shared.aeCard;
}

/** Before `riim train-autoencoder` has run on this server: say how, and show the photos it learns from. */
async function notTrained(root, ctx) {
  root.append(element("div", { className: "alert alert-info small", attrs: { role: "status" }, text: ctx.t("lesson.autoencoders.missing") }));
  const garments = await loadGarments(ctx, "sneaker,bag", () => [0, 0], 4, 2);
  root.append(element("div", { className: "d-flex flex-wrap gap-1" }, ...garments.train.images.map((pixels, i) =>
    thumbnail(pixels, ctx.t(`label.${garments.classes[garments.train.labels[i]]}`)))));
  done(root, {});
}

/** A 28×28 grey photo (bytes) as a PNG blob: what an upload of it would be. */
function pngBlob(pixels) {
  const canvas = element("canvas", { attrs: { width: 28, height: 28 } });
  const image = new ImageData(28, 28);
  pixels.forEach((value, i) => image.data.set([value, value, value, 255], i * 4));
  canvas.getContext("2d").putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

/** The images the demo rebuilds: Fashion-MNIST test photos (normal) and bundled real photos (unusual). */
async function inputs(ctx) {
  ctx.shared.aeInputs ??= (async () => {
    const garments = await loadGarments(ctx, "sneaker,bag", () => [0, 0], 2, ctx.quick ? 2 : 3);
    const normal = await Promise.all(garments.test.images.map(async (pixels, i) => ({
      name: ctx.t(`label.${garments.classes[garments.test.labels[i]]}`), blob: await pngBlob(pixels), normal: true })));
    const known = new Map((await samples(ctx)).map((photo) => [photo.name, photo]));
    const photos = await Promise.all(PHOTOS.filter((name) => known.has(name)).map(async (name) => ({
      name, blob: await (await fetch(known.get(name).url)).blob(), normal: false })));
    return [...normal, ...photos];
  })();
  return ctx.shared.aeInputs;
}

async function reconstruct(ctx, items, threshold) {
  const form = new FormData();
  items.forEach((item, i) => form.append("image", item.blob, `image-${i}.png`));
  const query = threshold === undefined ? "" : `?threshold=${threshold}`;
  return ctx.api(URL_RECONSTRUCT + query, { method: "POST", body: form });
}

function gallery(parent, ctx, items, body) {
  parent.replaceChildren(...items.map((item, i) => {
    const result = body.results[i];
    return element("figure", { className: "ae-pair text-center" },
      element("div", { className: "d-flex gap-1 justify-content-center" },
        element("img", { className: "ae-thumb", attrs: { src: result.input, alt: ctx.t("lesson.autoencoders.input_alt", { name: item.name }) } }),
        element("img", { className: "ae-thumb", attrs: { src: result.reconstruction, alt: ctx.t("lesson.autoencoders.output_alt", { name: item.name }) } })),
      element("figcaption", { className: "small" },
        element("div", { className: "text-truncate", text: item.name }),
        element("div", { className: "text-body-secondary", text: ctx.t(item.normal ? "lesson.autoencoders.from_fashion" : "lesson.autoencoders.from_photo") }),
        element("div", { text: ctx.t("lesson.autoencoders.error", { error: fixed(result.error, 4) }) }),
        element("span", { className: `badge ${result.unusual ? "text-bg-warning" : "text-bg-success"}`,
          text: ctx.t(result.unusual ? "lesson.autoencoders.unusual" : "lesson.autoencoders.normal") })));
  }));
}

function thresholdControl(parent, ctx, card, onChange) {
  const base = card.anomaly.threshold;
  const input = element("input", { className: "form-range", attrs: { type: "range", min: "0", max: String(base * 3),
    step: String(base / 50), value: String(base), "aria-label": ctx.t("lesson.autoencoders.threshold_label") } });
  const text = element("div", { className: "small" });
  const show = () => { text.textContent = ctx.t("lesson.autoencoders.threshold", { value: fixed(Number(input.value), 4), card: fixed(base, 4), tpr: pct(card.anomaly.tpr, 0) }); };
  input.addEventListener("change", () => { show(); onChange(Number(input.value)); });
  show();
  parent.append(element("label", { className: "form-label small mb-0", text: ctx.t("lesson.autoencoders.threshold_label") }), input, text);
}

async function latentMap(parent, ctx, card) {
  const url = `/api/v1/models/${MODEL}/versions/${card.version}/files/${card.files.latent_map.path}`;
  const map = await (await fetch(url)).json();
  const methods = card.latent.map.methods;
  const select = element("select", { className: "form-select form-select-sm w-auto", attrs: { "aria-label": ctx.t("lesson.autoencoders.map_method") } },
    ...methods.map((method) => element("option", { text: ctx.t(`lesson.autoencoders.method.${method}`), attrs: { value: method } })));
  parent.append(block(ctx.t("lesson.autoencoders.map_title"), ctx.t("lesson.autoencoders.map_text",
    { points: map.labels.length, dim: card.latent.dim, variance: pct(map.pca_explained_variance, 0) })), select);
  const datasets = (method) => map.classes.map((name, k) => ({
    label: ctx.t(`label.${name}`), backgroundColor: COLOURS[k], pointRadius: 2,
    data: map[method].filter((_, i) => map.labels[i] === k).map(([x, y]) => ({ x, y })) }));
  const plot = chart(parent, { type: "scatter", data: { datasets: datasets(methods[0]) },
    options: { scales: { x: axis(ctx.t("lesson.autoencoders.map_x")), y: axis(ctx.t("lesson.autoencoders.map_y")) } } },
  ctx.t("lesson.autoencoders.map_title"));
  plot.canvas.parentNode.classList.add("chart-tall");
  select.addEventListener("change", () => { plot.data.datasets = datasets(select.value); plot.update(); });
}

function evaluation(parent, ctx, card) {
  const report = card.anomaly.evaluation;
  if (!report) {
    parent.append(element("p", { className: "small", text: ctx.t("lesson.autoencoders.no_evaluation") }));
    return null;
  }
  const scores = ["reconstruction_mse", "mahalanobis_refit", "mahalanobis", "energy"];
  const kinds = Object.keys(report.out_of_distribution);
  parent.append(block(ctx.t("lesson.autoencoders.eval_title"), ctx.t("lesson.autoencoders.eval_text", {
    normal: report.in_distribution.images.toLocaleString(ctx.lang), photos: report.out_of_distribution.photos.images,
    digits: report.out_of_distribution.digits?.images ?? 0, model: report.image_model.name })), smallTable([
    [ctx.t("lesson.autoencoders.score"), ...kinds.map((kind) => ctx.t(`lesson.autoencoders.kind.${kind}`))],
    ...scores.filter((score) => score in report.out_of_distribution[kinds[0]]).map((score) => [
      ctx.t(`lesson.autoencoders.score_name.${score}`), ...kinds.map((kind) => fixed(report.out_of_distribution[kind][score], 3))]),
  ]), element("p", { className: "small text-body-secondary", text: ctx.t("lesson.autoencoders.eval_note") }));
  return report.out_of_distribution.photos.reconstruction_mse;
}

export async function mount(root, ctx) {
  try {
    const card = await servedCard(ctx);
    if (!card) return notTrained(root, ctx);
    root.append(block(ctx.t("lesson.autoencoders.rebuild_title", { dim: card.latent.dim }), ctx.t("lesson.autoencoders.rebuild_text",
      { dim: card.latent.dim, mse: fixed(card.metrics.reconstruction_mse.test, 4) })));
    const items = await inputs(ctx);
    const box = element("div", { className: "ae-gallery mb-2" });
    root.append(box);
    let body = await reconstruct(ctx, items);
    ctx.shared.aeResults = { items, body };
    gallery(box, ctx, items, body);
    thresholdControl(root, ctx, card, async (value) => {
      body = await reconstruct(ctx, items, value);
      gallery(box, ctx, items, body);
    });
    await latentMap(root, ctx, card);
    const auroc = evaluation(root, ctx, card);
    const normal = body.results.filter((_, i) => items[i].normal).map((r) => r.error);
    done(root, { normal_error: Math.max(...normal), threshold: body.threshold, ...(auroc === null ? {} : { auroc }) },
      { normal_error: [0, 1], threshold: [0, 1], auroc: [0, 1] });
  } catch (error) {
    failed(root, ctx, error);
  }
}

export async function exercise(root, ctx) {
  try {
    if (!(await servedCard(ctx))) {  // no model on this server yet: the question about what it learns from
      choiceExercise(root, ctx, ctx.t("lesson.autoencoders.question_missing"),
        [{ value: "photos", text: ctx.t("lesson.autoencoders.option_photos") }, { value: "labels", text: ctx.t("lesson.autoencoders.option_labels") }],
        (value) => ({ right: value === "photos", explanation: ctx.t("lesson.autoencoders.answer_missing") }));
      return;
    }
    const items = await inputs(ctx);
    const body = ctx.shared.aeResults?.body ?? await reconstruct(ctx, items);
    const photo = items.findIndex((item) => !item.normal);
    const garment = items.findIndex((item) => item.normal);
    const photoHigher = body.results[photo].error > body.results[garment].error;
    const values = { photo: items[photo].name, garment: items[garment].name,
      photo_error: fixed(body.results[photo].error, 4), garment_error: fixed(body.results[garment].error, 4) };
    choiceExercise(root, ctx, ctx.t("lesson.autoencoders.question", values),
      [{ value: true, text: ctx.t("lesson.autoencoders.photo_higher", values) },
        { value: false, text: ctx.t("lesson.autoencoders.garment_higher", values) }],
      (value) => ({ right: value === photoHigher,
        explanation: ctx.t(photoHigher ? "lesson.autoencoders.answer_photo" : "lesson.autoencoders.answer_garment", values) }));
  } catch (error) {
    failed(root, ctx, error);
  }
}
