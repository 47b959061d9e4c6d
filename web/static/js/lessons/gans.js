// Lesson gans: the served GAN's generator (training/gan.py) runs in this browser (its TF.js export, wasm
// backend) and draws a digit from the latent numbers the student moves with sliders; the server draws a batch
// from a seed (POST /api/v1/gan/sample, ONNX Runtime); the card's per-epoch samples and both losses show how
// it learnt, and the quality figure says honestly how recognisable its digits are.
import { wasmBackend } from "../edge.js";
import { element } from "../render.js";
import { axis, block as plainBlock, chart, choiceExercise, done, failed, fixed, pct, smallTable } from "../model-lessons.js";

/** A section heading with room above it. */
function block(title, text) {
  const section = plainBlock(title, text);
  section.classList.add("mt-3");
  return section;
}

const tf = globalThis.tf;
const MODEL = "digits-gan";
const URL_SAMPLE = "/api/v1/gan/sample";
const LIMIT = 3;  // slider range: ±3 standard deviations

/** The served version's card, or null when the model is not on this server yet. */
async function servedCard(ctx) {
  ctx.shared.ganCard ??= ctx.api(`/api/v1/models/${MODEL}`).then((body) =>
    body.versions.find((card) => card.version === body.current) ?? null,
  (error) => { if (error.status === 404) return null; throw error; });
  return ctx.shared.ganCard;
}

/** Before `riim train-gan` has run on this server: say how, and show what a generator's input looks like. */
function notTrained(root, ctx) {
  root.append(element("div", { className: "alert alert-info small", attrs: { role: "status" }, text: ctx.t("lesson.gans.missing") }));
  const z = Array.from({ length: 16 }, () => {  // standard normal numbers (Box-Muller), new on every visit
    const u = 1 - Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  });
  chart(root, { type: "bar", data: { labels: z.map((_, i) => `z${i + 1}`), datasets: [{ label: ctx.t("lesson.gans.latent_label"), data: z, backgroundColor: "#6c757d" }] },
    options: { plugins: { legend: { display: false } }, scales: { y: axis(ctx.t("lesson.gans.latent_axis")) } } }, ctx.t("lesson.gans.latent_label"));
  done(root, {});
}

const fileUrl = (card, key) => `/api/v1/models/${MODEL}/versions/${card.version}/files/${card.files[key].path}`;

/** The generator's image for one latent vector, drawn on ``canvas``; returns the milliseconds it took
 * (execute + reading the pixels back). */
export function generate(model, card, z, canvas) {
  const started = performance.now();
  const pixels = tf.tidy(() => model.execute(tf.tensor2d([z], [1, card.latent.dim])).dataSync());
  const elapsed = performance.now() - started;
  const size = card.output.size;
  const image = new ImageData(size, size);
  pixels.forEach((value, i) => {
    const grey = Math.round(Math.min(1, Math.max(0, value)) * 255);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
  return elapsed;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function sliders(parent, ctx, card, onChange) {
  const z = Array.from({ length: card.latent.dim }, (_, i) => Number((Math.sin(i * 12.9898) * 1.2).toFixed(2)));
  const grid = element("div", { className: "gan-sliders" });
  z.forEach((value, i) => {
    const input = element("input", { className: "form-range", attrs: { type: "range", min: String(-LIMIT), max: String(LIMIT),
      step: "0.1", value: String(value), "aria-label": ctx.t("lesson.gans.slider", { k: i + 1 }) } });
    input.addEventListener("input", () => { z[i] = Number(input.value); onChange(z); });
    grid.append(element("label", { className: "small gan-slider" }, element("span", { text: `z${i + 1}` }), input));
  });
  parent.append(grid);
  return z;
}

async function serverBatch(parent, ctx) {
  const seedInput = element("input", { className: "form-control form-control-sm w-auto", attrs: { type: "number", min: "0", max: "4294967295", value: "1",
    "aria-label": ctx.t("lesson.gans.seed") } });
  const button = element("button", { className: "btn btn-outline-primary btn-sm", text: ctx.t("lesson.gans.server_button"), attrs: { type: "button" } });
  const strip = element("div", { className: "d-flex flex-wrap gap-1 mt-1" });
  const note = element("div", { className: "small text-body-secondary" });
  const draw = async () => {
    const body = await ctx.api(URL_SAMPLE, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ n: ctx.quick ? 8 : 16, seed: Number(seedInput.value) || 0 }) });
    strip.replaceChildren(...body.images.map((src, i) => element("img", { className: "gan-thumb", attrs: { src, alt: ctx.t("lesson.gans.sample_alt", { k: i + 1 }) } })));
    note.textContent = ctx.t("lesson.gans.server_note", { n: body.n, seed: body.seed, ms: fixed(body.timings.inference_ms, 1) });
    return body;
  };
  button.addEventListener("click", draw);
  parent.append(block(ctx.t("lesson.gans.server_title"), ctx.t("lesson.gans.server_text")),
    element("div", { className: "d-flex gap-2 align-items-center" }, element("label", { className: "small", text: ctx.t("lesson.gans.seed") }), seedInput, button), strip, note);
  return draw();
}

function training(parent, ctx, card) {
  const losses = card.metrics.losses;
  const epochs = losses.generator.map((_, i) => i + 1);
  parent.append(block(ctx.t("lesson.gans.epochs_title"), ctx.t("lesson.gans.epochs_text", { epochs: card.samples.epochs, per: card.samples.per_epoch })),
    element("img", { className: "gan-epochs", attrs: { src: fileUrl(card, "samples"), alt: ctx.t("lesson.gans.epochs_title") } }));
  parent.append(block(ctx.t("lesson.gans.loss_title"), ctx.t("lesson.gans.loss_text")));
  chart(parent, { type: "line", data: { labels: epochs, datasets: [
    { label: ctx.t("lesson.gans.generator"), data: losses.generator, borderColor: "#fd7e14", backgroundColor: "#fd7e14" },
    { label: ctx.t("lesson.gans.discriminator"), data: losses.discriminator, borderColor: "#0d6efd", backgroundColor: "#0d6efd" }] },
  options: { scales: { x: axis(ctx.t("lesson.gans.epoch")), y: axis(ctx.t("lesson.gans.loss")) } } }, ctx.t("lesson.gans.loss_title"));
  const q = card.metrics.quality;
  parent.append(block(ctx.t("lesson.gans.quality_title"), ctx.t("lesson.gans.quality_text", { accuracy: pct(q.classifier_accuracy), at: pct(q.confident_at, 0) })),
    smallTable([[ "", ctx.t("lesson.gans.real"), ctx.t("lesson.gans.generated")],
      [ctx.t("lesson.gans.mean_confidence"), pct(q.real_heldout.mean_confidence), pct(q.generated.mean_confidence)],
      [ctx.t("lesson.gans.confident_share"), pct(q.real_heldout.confident_share), pct(q.generated.confident_share)],
      [ctx.t("lesson.gans.spread"), fixed(q.real_heldout.class_spread, 2), fixed(q.generated.class_spread, 2)]]),
    element("p", { className: "small text-body-secondary", text: ctx.t("lesson.gans.quality_note", { seconds: fixed(card.training.seconds, 0) }) }));
}

export async function mount(root, ctx) {
  try {
    const card = await servedCard(ctx);
    if (!card) return notTrained(root, ctx);
    root.append(block(ctx.t("lesson.gans.browser_title"), ctx.t("lesson.gans.browser_text", { dim: card.latent.dim })));
    const status = element("div", { className: "small", attrs: { role: "status" }, text: ctx.t("lesson.gans.loading") });
    const canvas = element("canvas", { className: "gan-canvas", attrs: { width: card.output.size, height: card.output.size, role: "img",
      "aria-label": ctx.t("lesson.gans.canvas_alt") } });
    root.append(element("div", { className: "d-flex flex-wrap gap-3 align-items-start" }, canvas,
      element("div", { className: "flex-grow-1" }, status)));
    await wasmBackend();
    const model = await tf.loadGraphModel(fileUrl(card, "tfjs"));
    const times = [];
    const z = sliders(root, ctx, card, (vector) => {
      const ms = generate(model, card, vector, canvas);
      status.textContent = ctx.t("lesson.gans.drawn", { ms: fixed(ms, 1) });
    });
    generate(model, card, z, canvas);  // the first call compiles the kernels
    for (let i = 0; i < (ctx.quick ? 10 : 30); i++) times.push(generate(model, card, z, canvas));
    const p50 = median(times);
    status.textContent = ctx.t("lesson.gans.latency", { p50: fixed(p50, 1), runs: times.length, backend: tf.getBackend() });
    ctx.shared.ganLatency = p50;
    await serverBatch(root, ctx);
    training(root, ctx, card);
    done(root, { latency_p50_ms: p50, generator_loss: card.metrics.losses.generator.at(-1) },
      { latency_p50_ms: [0, 2000], generator_loss: [0, 100] });
  } catch (error) {
    failed(root, ctx, error);
  }
}

export async function exercise(root, ctx) {
  try {
    const card = await servedCard(ctx);
    const losses = card?.metrics.losses;
    const rose = losses ? losses.generator.at(-1) > losses.generator[0] : null;
    const values = !losses ? {} : { first: fixed(losses.generator[0], 2), last: fixed(losses.generator.at(-1), 2),
      dfirst: fixed(losses.discriminator[0], 2), dlast: fixed(losses.discriminator.at(-1), 2) };
    choiceExercise(root, ctx, ctx.t("lesson.gans.question"),
      [{ value: "fooled", text: ctx.t("lesson.gans.option_fooled") }, { value: "zero", text: ctx.t("lesson.gans.option_zero") },
        { value: "copy", text: ctx.t("lesson.gans.option_copy") }],
      (value) => ({ right: value === "fooled", explanation: ctx.t(rose === null ? "lesson.gans.answer_missing"
        : rose ? "lesson.gans.answer_rose" : "lesson.gans.answer_fell", values) }));
  } catch (error) {
    failed(root, ctx, error);
  }
}
