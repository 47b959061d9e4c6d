// Data-augmentation lesson: the student's image (or a bundled photo) through the EXACT recipe training uses
// (models/augment_recipe.py, run by the server with albumentations: POST /api/v1/lessons/augment), with a
// control for each transform's probability and strength; each copy says which transforms fired.
import { element, fileButton, formatNumber } from "../render.js";

const DEFAULT_SAMPLE = "skimage/chelsea";
const PROBABILITY_STEP = 0.05;

/** Number input for one AugmentConfig setting, within its range. */
function settingInput(ctx, name, spec, values, onChange) {
  const id = `aug-${name}`;
  const step = spec.high > 5 ? 1 : (name.endsWith("area") || spec.high <= 1 ? PROBABILITY_STEP : 0.01);
  const input = element("input", { className: "form-range", attrs: { id, type: "range", min: String(spec.low), max: String(spec.high), step: String(step), value: String(values[name]) } });
  const shown = element("span", { className: "small text-body-secondary", text: formatNumber(values[name]) });
  input.addEventListener("input", () => {
    values[name] = Number(input.value);
    shown.textContent = formatNumber(values[name]);
  });
  input.addEventListener("change", onChange);
  return element("div", { className: "col-6 col-md-4" },
    element("label", { className: "form-label small mb-0 d-flex justify-content-between gap-1", attrs: { for: id } },
      element("span", { text: ctx.t(`lesson.data-augmentation.setting_${name}`) }), shown), input);
}

/** One box per step of the recipe: its probability and its strengths. */
function controls(ctx, recipe, values, onChange) {
  return element("div", { className: "row g-2" }, ...recipe.steps.map((step) => element("div", { className: "col-12" },
    element("fieldset", { className: "lesson-class-box" },
      element("legend", { className: "small fw-semibold mb-1", text: `${ctx.t(`lesson.data-augmentation.step_${step.name}`)} (${step.transform})` }),
      element("div", { className: "row g-2" },
        settingInput(ctx, step.probability, recipe.settings[step.probability], values, onChange),
        ...step.settings.map((name) => settingInput(ctx, name, recipe.settings[name], values, onChange)))))));
}

function gallery(ctx, answer) {
  const figure = (src, caption, alt) => element("figure", {}, element("img", { attrs: { src, alt } }), element("figcaption", { text: caption }));
  return element("div", { className: "lesson-aug-grid" },
    figure(answer.original, ctx.t("lesson.data-augmentation.original", { size: answer.size }), ctx.t("lesson.data-augmentation.original_alt")),
    ...answer.samples.map((src, i) => figure(src,
      answer.applied[i].length ? answer.applied[i].map((name) => ctx.t(`lesson.data-augmentation.step_${name}`)).join(" + ") : ctx.t("lesson.data-augmentation.nothing"),
      ctx.t("lesson.data-augmentation.copy_alt", { n: i + 1 }))));
}

/** POST the image (the student's file, else a bundled sample's) with the settings; the answer. */
export async function augmentImage(ctx, { sample, file, values, count, seed }) {
  const body = new FormData();
  const image = file || await (await fetch(`/api/v1/lessons/samples/${sample}`)).blob();
  body.append("image", image, file ? file.name : sample.split("/").pop());
  body.append("count", String(count));
  body.append("seed", String(seed));
  Object.entries(values).forEach(([name, value]) => body.append(name, String(value)));
  return ctx.api("/api/v1/lessons/augment", { method: "POST", body });
}

export async function mount(root, ctx) {
  const [recipe, { photos }] = await Promise.all([ctx.api("/api/v1/lessons/augment/recipe"), ctx.api("/api/v1/lessons/samples")]);
  const values = Object.fromEntries(Object.entries(recipe.settings).map(([name, spec]) => [name, spec.default]));
  const state = { sample: DEFAULT_SAMPLE, file: null, seed: 0, count: ctx.quick ? 4 : 8 };
  const picker = element("select", { className: "form-select form-select-sm", attrs: { id: "aug-sample" } },
    ...photos.map((photo) => element("option", { text: photo.name, attrs: { value: photo.name } })));
  picker.value = DEFAULT_SAMPLE;
  const file = element("input", { attrs: { type: "file", accept: "image/*", id: "aug-file" } });
  const count = element("select", { className: "form-select form-select-sm", attrs: { id: "aug-count" } },
    ...[4, 8, 16].map((n) => element("option", { text: formatNumber(n), attrs: { value: String(n) } })));
  count.value = String(state.count);
  const again = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.data-augmentation.again"), attrs: { type: "button" } });
  const reset = element("button", { className: "btn btn-outline-secondary btn-sm", text: ctx.t("lesson.data-augmentation.reset"), attrs: { type: "button" } });
  const status = element("p", { className: "small text-body-secondary mb-1", attrs: { role: "status" } });
  const output = element("div");
  const settings = element("details", { className: "mt-2" }, element("summary", { className: "small", text: ctx.t("lesson.data-augmentation.controls") }));
  const field = (id, label, input, width = "col-12 col-md-4") => element("div", { className: width },
    element("label", { className: "form-label small mb-0", text: label, attrs: { for: id } }), input);
  root.append(element("p", { className: "small", text: ctx.t("lesson.data-augmentation.intro", { size: recipe.size, steps: recipe.steps.length }) }),
    element("div", { className: "row g-2 align-items-end mb-2" },
      field("aug-sample", ctx.t("lesson.data-augmentation.sample"), picker), field("aug-file", ctx.t("lesson.data-augmentation.file"), element("div", {}, fileButton(file, ctx.t("common.choose_photo")))),
      field("aug-count", ctx.t("lesson.data-augmentation.count"), count, "col-6 col-md-2"),
      element("div", { className: "col-6 col-md-2 d-flex gap-1" }, again)),
    status, output, settings);

  const run = async () => {
    again.disabled = true;
    const started = performance.now();
    try {
      const answer = await augmentImage(ctx, { ...state, values });
      const seconds = (performance.now() - started) / 1000;
      output.replaceChildren(gallery(ctx, answer));
      const changed = answer.applied.filter((fired) => fired.length).length;
      status.textContent = ctx.t("lesson.data-augmentation.status", { count: answer.samples.length, changed, seed: answer.seed,
        seconds: formatNumber(seconds, { maximumFractionDigits: 2 }), server: formatNumber(answer.elapsed_ms / 1000, { maximumFractionDigits: 2 }) });
      state.last = answer;
      return { samples: answer.samples.length, changed, seconds, size: answer.size };
    } catch (error) {
      status.textContent = error.message;
      throw error;
    } finally {
      again.disabled = false;
    }
  };
  const rerun = () => run().catch(() => {});
  settings.append(controls(ctx, recipe, values, rerun), element("div", { className: "mt-2" }, reset));
  again.addEventListener("click", () => { state.seed += 1; rerun(); });
  picker.addEventListener("change", () => { state.sample = picker.value; state.file = null; file.value = ""; rerun(); });
  file.addEventListener("change", () => { if (file.files[0]) { state.file = file.files[0]; rerun(); } });
  count.addEventListener("change", () => { state.count = Number(count.value); rerun(); });
  reset.addEventListener("click", () => {
    Object.entries(recipe.settings).forEach(([name, spec]) => { values[name] = spec.default; });
    settings.replaceChildren(settings.firstChild, controls(ctx, recipe, values, rerun), element("div", { className: "mt-2" }, reset));
    rerun();
  });
  const result = await run();
  ctx.shared.augmentation = { recipe };
  root.dataset.result = JSON.stringify(result);
  root.dataset.expect = JSON.stringify({ samples: [1, 16], changed: [1, 16], seconds: [0, 120], size: [8, 1024] });
  root.dataset.state = "done";
}

/** Predict-then-reveal: with only the flip switched on at probability p, how many of 16 copies are flipped? */
export async function exercise(root, ctx) {
  const { recipe } = ctx.shared.augmentation || { recipe: await ctx.api("/api/v1/lessons/augment/recipe") };
  const copies = 16;
  const probability = 0.5;
  const guess = element("input", { className: "form-control form-control-sm lesson-q-input", attrs: { id: "aug-guess", type: "number", min: "0", max: String(copies), step: "1" } });
  const check = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.data-augmentation.ex_check"), attrs: { type: "button" } });
  const answer = element("div", { className: "mt-2", attrs: { role: "status" } });
  root.append(element("p", { text: ctx.t("lesson.data-augmentation.ex_question", { copies, probability: formatNumber(probability) }) }),
    element("div", { className: "d-flex flex-wrap gap-2 align-items-end" },
      element("label", { className: "form-label small w-100 mb-0", text: ctx.t("lesson.data-augmentation.ex_label"), attrs: { for: "aug-guess" } }), guess, check),
    answer);
  check.addEventListener("click", async () => {
    check.disabled = true;
    try {
      // every other transform off: only the flip can fire
      const values = Object.fromEntries(recipe.steps.map((step) => [step.probability, 0]));
      values.horizontal_flip = probability;
      const seed = Math.floor(Math.random() * 1e6);
      const result = await augmentImage(ctx, { sample: DEFAULT_SAMPLE, values, count: copies, seed });
      const flipped = result.applied.filter((fired) => fired.includes("horizontal_flip")).length;
      const close = Math.abs(Number(guess.value) - flipped) <= 2;
      answer.replaceChildren(element("div", { className: `alert ${close ? "alert-success" : "alert-warning"} mb-0` },
        element("strong", { text: ctx.t(close ? "lesson.data-augmentation.ex_close" : "lesson.data-augmentation.ex_far") }), " ",
        ctx.t("lesson.data-augmentation.ex_explain", { flipped, copies, guess: guess.value || "—", expected: formatNumber(copies * probability), seed })),
      gallery(ctx, result));
      if (close) ctx.complete?.();
    } catch (error) {
      answer.replaceChildren(element("div", { className: "alert alert-danger mb-0", text: error.message }));
    } finally {
      check.disabled = false;
    }
  });
  root.dataset.state = "ready";
}
