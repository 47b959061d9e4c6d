// Lesson convolution: the student's own photo (or one of the app's real sample photos) convolved in the
// browser with an editable 3×3 kernel; one output pixel worked out with its numbers; the same result from
// TF.js's tf.conv2d (the operation a CNN layer runs) as a check. The exercise: which kernel made this image?
import { element, fileButton, formatNumber } from "../render.js";

const tf = globalThis.tf;
const PRESETS = {
  identity: [0, 0, 0, 0, 1, 0, 0, 0, 0],
  blur: Array(9).fill(1 / 9),
  edges: [0, -1, 0, -1, 4, -1, 0, -1, 0],
  vertical: [-1, 0, 1, -2, 0, 2, -1, 0, 1],
  horizontal: [-1, -2, -1, 0, 0, 0, 1, 2, 1],
  sharpen: [0, -1, 0, -1, 5, -1, 0, -1, 0],
};
const SAMPLE = "skimage/chelsea";
const number = (value, digits = 2) => formatNumber(value, { maximumFractionDigits: digits });

/** A photo as grey levels 0-255 (Float32Array, row by row), at most ``size`` pixels wide. */
export function greyPixels(image, size) {
  const scale = Math.min(1, size / image.naturalWidth);
  const width = Math.max(3, Math.round(image.naturalWidth * scale));
  const height = Math.max(3, Math.round(image.naturalHeight * scale));
  const canvas = element("canvas", { attrs: { width, height } });
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  const grey = new Float32Array(width * height);
  for (let i = 0; i < grey.length; i += 1) grey[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  return { grey, width, height };
}

/** Slide the 3×3 ``kernel`` over the grey image: each output pixel is the sum of the 9 neighbours times the
 * 9 kernel numbers ("valid" convolution: the output is 2 pixels smaller each way). */
export function convolve({ grey, width, height }, kernel) {
  const out = new Float32Array((width - 2) * (height - 2));
  for (let y = 1; y < height - 1; y += 1) {
    for (let x = 1; x < width - 1; x += 1) {
      let sum = 0;
      for (let dy = -1; dy <= 1; dy += 1) {
        for (let dx = -1; dx <= 1; dx += 1) sum += grey[(y + dy) * width + x + dx] * kernel[(dy + 1) * 3 + dx + 1];
      }
      out[(y - 1) * (width - 2) + x - 1] = sum;
    }
  }
  return { values: out, width: width - 2, height: height - 2 };
}

/** The same convolution with TF.js (tf.conv2d, what a convolutional layer computes). */
function tfConvolve({ grey, width, height }, kernel) {
  return tf.tidy(() => tf.conv2d(tf.tensor4d(grey, [1, height, width, 1]), tf.tensor4d(kernel, [3, 3, 1, 1]), 1, "valid").dataSync());
}

/** Values as a grey picture: clipped to 0-255, or |value| stretched to the maximum for kernels summing to 0
 * (edge detectors give positive and negative answers around 0). */
function picture({ values, width, height }, kernel, canvas) {
  const edges = Math.abs(kernel.reduce((a, b) => a + b, 0)) < 1e-6;
  const top = edges ? Math.max(1e-6, ...values.map(Math.abs)) : 255;
  const image = new ImageData(width, height);
  values.forEach((value, i) => {
    const level = edges ? (255 * Math.abs(value)) / top : Math.min(255, Math.max(0, value));
    image.data.set([level, level, level, 255], i * 4);
  });
  Object.assign(canvas, { width, height });
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function greyPicture({ grey, width, height }, canvas) {
  picture({ values: grey, width, height }, [0, 0, 0, 0, 1, 0, 0, 0, 0], canvas);
}

async function loadImage(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  return image;
}

export async function mount(root, ctx) {
  const { t } = ctx;
  const size = ctx.quick ? 128 : 320;
  const samples = (await ctx.api("/api/v1/lessons/samples")).photos;
  const sampleSelect = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "conv-sample" } },
    ...samples.map((photo) => element("option", { text: photo.name, attrs: { value: photo.url } })));
  sampleSelect.value = samples.find((photo) => photo.name === SAMPLE)?.url || samples[0].url;
  const file = element("input", { attrs: { type: "file", accept: "image/*", id: "conv-file" } });
  const presetButtons = Object.keys(PRESETS).map((name) => element("button", { className: "btn btn-outline-secondary btn-sm",
    text: t(`lesson.convolution.preset_${name}`), attrs: { type: "button", "data-preset": name } }));
  const cells = Array.from({ length: 9 }, (_, i) => element("input", { className: "form-control form-control-sm kernel-cell",
    attrs: { type: "number", step: "any", "aria-label": t("lesson.convolution.cell", { row: Math.floor(i / 3) + 1, column: (i % 3) + 1 }) } }));
  const input = element("canvas", { className: "conv-image", attrs: { role: "img", "aria-label": t("lesson.convolution.input_alt") } });
  const output = element("canvas", { className: "conv-image", attrs: { role: "img", "aria-label": t("lesson.convolution.output_alt") } });
  const worked = element("div", { className: "small conv-worked" });
  const check = element("p", { className: "small text-body-secondary mb-0" });
  root.append(
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
      element("label", { className: "form-label mb-0 small", text: t("lesson.convolution.sample"), attrs: { for: "conv-sample" } }), sampleSelect,
      element("label", { className: "form-label mb-0 small", text: t("lesson.convolution.own"), attrs: { for: "conv-file" } }), fileButton(file, t("common.choose_photo"))),
    element("p", { className: "small text-body-secondary", text: t("lesson.convolution.privacy") }),
    element("div", { className: "d-flex flex-wrap gap-1 mb-2" }, ...presetButtons),
    element("div", { className: "conv-layout" },
      element("figure", { className: "mb-0" }, element("div", { className: "kernel-grid" }, ...cells),
        element("figcaption", { className: "small", text: t("lesson.convolution.kernel") })),
      element("figure", { className: "mb-0" }, input, element("figcaption", { className: "small", text: t("lesson.convolution.input") })),
      element("figure", { className: "mb-0" }, output, element("figcaption", { className: "small", text: t("lesson.convolution.output") }))),
    worked, check);

  const state = { pixels: null };
  ctx.shared.convolution = state;
  const kernel = () => cells.map((cell) => (Number.isFinite(Number(cell.value)) && cell.value !== "" ? Number(cell.value) : 0));
  const setKernel = (values) => cells.forEach((cell, i) => { cell.value = String(Math.round(values[i] * 1000) / 1000); });

  function render() {
    const k = kernel();
    const result = convolve(state.pixels, k);
    picture(result, k, output);
    // One output pixel with its numbers: the centre of the image.
    const cx = Math.floor(result.width / 2);
    const cy = Math.floor(result.height / 2);
    const patch = [];
    for (let dy = 0; dy < 3; dy += 1) for (let dx = 0; dx < 3; dx += 1) patch.push(state.pixels.grey[(cy + dy) * state.pixels.width + cx + dx]);
    const terms = patch.map((value, i) => `${number(value, 0)}×${number(k[i])}`).join(" + ");
    const value = result.values[cy * result.width + cx];
    worked.replaceChildren(element("p", { className: "mb-1", text: t("lesson.convolution.worked", { x: cx, y: cy, terms, value: number(value) }) }));
    const reference = tfConvolve(state.pixels, k);
    const difference = result.values.reduce((worst, v, i) => Math.max(worst, Math.abs(v - reference[i])), 0);
    check.textContent = t("lesson.convolution.check", { difference: number(difference, 6), pixels: formatNumber(result.values.length) });
    root.dataset.result = JSON.stringify({ output_pixel: value, tf_difference: difference, width: result.width, height: result.height });
    root.dataset.expect = JSON.stringify({ tf_difference: [0, 0.01], width: [1, size], output_pixel: [-2040, 2040] });
    return result;
  }

  async function useImage(url) {
    const image = await loadImage(url);
    state.pixels = greyPixels(image, size);
    greyPicture(state.pixels, input);
    render();
    state.ready?.();
  }

  presetButtons.forEach((button) => button.addEventListener("click", () => { setKernel(PRESETS[button.dataset.preset]); render(); }));
  cells.forEach((cell) => cell.addEventListener("input", render));
  sampleSelect.addEventListener("change", () => useImage(sampleSelect.value));
  file.addEventListener("change", () => {
    if (!file.files[0]) return;
    const url = URL.createObjectURL(file.files[0]);
    useImage(url).catch((error) => { check.textContent = error.message; }).finally(() => URL.revokeObjectURL(url));
  });
  await tf.setBackend("cpu");
  setKernel(PRESETS.edges);
  await useImage(sampleSelect.value);
  root.dataset.state = "done";
}

/** Which kernel made this image? Four choices; the answer is computed on the current photo. */
export async function exercise(root, ctx) {
  const { t } = ctx;
  const state = ctx.shared.convolution;
  const mystery = element("canvas", { className: "conv-image", attrs: { role: "img", "aria-label": t("lesson.convolution.mystery") } });
  const choices = element("div", { className: "d-flex flex-wrap gap-1" });
  const verdict = element("p", { className: "mt-2 mb-1", attrs: { "aria-live": "polite" } });
  const next = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("lesson.convolution.another"), attrs: { type: "button" } });
  root.append(element("div", { className: "d-flex flex-wrap gap-3 align-items-start" }, mystery, choices), verdict, next);
  const names = Object.keys(PRESETS).filter((name) => name !== "identity");
  let round = 0;
  let right = 0;

  function ask() {
    const answer = names[(round * 3 + 1) % names.length];
    round += 1;
    picture(convolve(state.pixels, PRESETS[answer]), PRESETS[answer], mystery);
    verdict.textContent = "";
    const buttons = names.map((name) => element("button", { className: "btn btn-outline-primary btn-sm", text: t(`lesson.convolution.preset_${name}`),
      attrs: { type: "button", "data-answer": name } }));
    buttons.forEach((button) => button.addEventListener("click", () => {
      const ok = button.dataset.answer === answer;
      right += ok;
      buttons.forEach((other) => { other.disabled = true; });
      verdict.className = `mt-2 mb-1 ${ok ? "text-success" : "text-danger"}`;
      verdict.textContent = `${t(ok ? "lesson.convolution.right" : "lesson.convolution.wrong", { name: t(`lesson.convolution.preset_${answer}`) })} ${t(`lesson.convolution.why_${answer}`)}`;
      if (right >= 3) ctx.complete();
    }));
    choices.replaceChildren(element("p", { className: "w-100 mb-1", text: t("lesson.convolution.question") }), ...buttons);
  }
  next.addEventListener("click", ask);
  ask();
  root.dataset.state = "ready";
}
