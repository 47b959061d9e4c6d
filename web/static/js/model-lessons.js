// Pieces shared by the model lessons' demos (pruning, quantization, model formats, active learning,
// anomalies): the photo the student chooses (a bundled real photo or their own file), the form that sends it,
// Chart.js charts in the page's colours, and the data-state / data-result marks the lesson page reads.
import { element, fileButton, formatNumber, labelText, table } from "./render.js";

export const DEFAULT_SAMPLE = "skimage/chelsea";
const Chart = globalThis.Chart;

/** A number with a fixed count of decimals in the page's language. */
export const fixed = (value, digits = 2) =>
  formatNumber(value, { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const megabytes = (bytes) => `${fixed(bytes / 1e6, 2)} MB`;
export const pct = (value, digits = 1) =>
  formatNumber(value, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The bundled real photos: [{name, label, url}]. */
export async function samples(ctx) {
  ctx.shared.samples ??= ctx.api("/api/v1/lessons/samples").then((body) => body.photos);
  return ctx.shared.samples;
}

/**
 * A photo chooser (bundled photos + "your own file") appended to ``root``; ``onChange(photo)`` runs on
 * every change with photo = {name, url, file}. Resolves to the initial photo (``initial`` sample).
 */
export async function photoChooser(root, ctx, onChange, initial = DEFAULT_SAMPLE) {
  const photos = await samples(ctx);
  const select = element("select", { className: "form-select form-select-sm", attrs: { "aria-label": ctx.t("lesson.models.photo") } },
    ...photos.map((photo) => element("option", { text: `${photo.name} (${labelText(photo.label)})`, attrs: { value: photo.name } })));
  const file = element("input", { attrs: { type: "file", accept: "image/*",
    "aria-label": ctx.t("lesson.models.own_photo") } });
  const preview = element("img", { className: "lesson-photo rounded border", attrs: { alt: ctx.t("lesson.models.photo") } });
  const byName = (name) => photos.find((photo) => photo.name === name) || photos[0];
  let current = byName(initial);
  select.value = current.name;
  const show = (photo) => {
    current = photo;
    preview.src = photo.file ? URL.createObjectURL(photo.file) : photo.url;
    onChange(photo);
  };
  select.addEventListener("change", () => show(byName(select.value)));
  file.addEventListener("change", () => {
    if (file.files[0]) show({ name: file.files[0].name, url: null, file: file.files[0] });
  });
  root.append(element("div", { className: "row g-2 align-items-center mb-2 lesson-photo-chooser" },
    element("div", { className: "col-auto" }, preview),
    element("div", { className: "col" },
      element("label", { className: "form-label small mb-1", text: ctx.t("lesson.models.choose_photo") }), select,
      element("div", { className: "small text-body-secondary mt-1", text: ctx.t("lesson.models.or_own") }),
      fileButton(file, ctx.t("common.choose_photo")))));
  preview.src = current.url;
  return current;
}

/** ImageNet class names in the page's language, by index (the tags' ``index``), fetched once per page. */
export async function imagenetNames(ctx) {
  ctx.shared.imagenetNames ??= fetch(`/imagenet-labels.${ctx.lang}.json`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return ctx.shared.imagenetNames;
}

/** The photo's bytes as a Blob (for the browser's own model or /predict). */
export async function photoBlob(photo) {
  if (photo.file) return photo.file;
  const url = photo.url ?? `/api/v1/lessons/samples/${photo.name}`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.blob();
}

/** A form carrying the photo's bytes as ``image`` (a bundled photo is fetched first; nothing is stored). */
export async function photoForm(photo) {
  const form = new FormData();
  form.append("image", await photoBlob(photo), photo.name.split("/").at(-1));
  return form;
}

/** POST a form to the API (CSRF header when the page has one). */
export function post(ctx, url, form) {
  const token = document.querySelector('meta[name="csrf-token"]')?.content;
  return ctx.api(url, { method: "POST", body: form, headers: token ? { "X-CSRFToken": token } : {} });
}

/** A Chart.js chart in a sized box; returns the chart. */
export function chart(parent, config, label) {
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": label } });
  parent.append(element("div", { className: "chart-canvas mb-2" }, canvas));
  return new Chart(canvas, {
    ...config,
    options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options },
  });
}

/** An axis title for Chart.js. */
export const axis = (text, extra = {}) => ({ title: { display: true, text }, ...extra });

/** A heading + paragraph block. */
export function block(title, text) {
  return element("div", { className: "mb-2" }, element("h3", { className: "h6 mb-1", text: title }),
    ...(text ? [element("p", { className: "small text-body-secondary mb-1", text })] : []));
}

/** A small table that scrolls sideways on a phone instead of overflowing. */
export function smallTable(rows) {
  return element("div", { className: "table-responsive" }, table(rows, "table table-sm small mb-2"));
}

/** Mark a demo finished with the numbers it shows (finite numbers only) and their plausible ranges
 * (docs/lessons.md: the browser test checks both). */
export function done(root, result, expect = {}) {
  root.dataset.result = JSON.stringify(result);
  root.dataset.expect = JSON.stringify(expect);
  root.dataset.state = "done";
}

/** A visible error in ``root`` and data-state="error". */
export function failed(root, ctx, error) {
  root.dataset.state = "error";
  root.append(element("div", { className: "alert alert-danger small", attrs: { role: "alert" },
    text: ctx.t("learn.demo_error", { message: error?.message || String(error) }) }));
}

/** A multiple-choice self-check: ``options`` [{value, text}], ``check(value)`` → {right, explanation}. */
export function choiceExercise(root, ctx, question, options, check) {
  const feedback = element("div", { className: "small mt-2", attrs: { role: "status" } });
  const buttons = options.map((option) => {
    const button = element("button", { className: "btn btn-outline-primary btn-sm", text: option.text, attrs: { type: "button" } });
    button.addEventListener("click", async () => {
      const { right, explanation } = await check(option.value);
      buttons.forEach((other) => other.classList.remove("btn-success", "btn-danger"));
      button.classList.add(right ? "btn-success" : "btn-danger");
      feedback.className = `small mt-2 alert ${right ? "alert-success" : "alert-warning"}`;
      feedback.textContent = `${ctx.t(right ? "lesson.models.right" : "lesson.models.wrong")} ${explanation}`;
      root.dataset.answered = right ? "right" : "wrong";
      if (right) ctx.complete?.();
    });
    return button;
  });
  root.append(element("p", { className: "mb-2", text: question }),
    element("div", { className: "d-flex flex-wrap gap-2" }, ...buttons), feedback);
  root.dataset.state = "ready";
}
