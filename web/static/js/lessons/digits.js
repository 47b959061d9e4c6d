// Lesson digits (MLP vs CNN): a compact draw-and-predict widget driving POST /api/v1/digits/predict (the
// document's MLP and the small CNN served by ONNX Runtime), the 28×28 input made in this browser by the same
// steps as the server (digits_preprocess.js); and a two-question exercise on what each architecture is for.
import { preprocess, SIZE } from "../digits_preprocess.js";
import { element, formatNumber, percent } from "../render.js";

const SIDE = 168;
const SAMPLE = [[[42, 34], [126, 34], [74, 142]]];  // a "7", drawn on mount so the demo answers at once

function paint(context, strokes) {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, SIDE, SIDE);
  Object.assign(context, { strokeStyle: "#000", lineWidth: 11, lineCap: "round", lineJoin: "round" });
  for (const stroke of strokes) {
    context.beginPath();
    stroke.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    if (stroke.length === 1) context.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    context.stroke();
  }
}

function inputCanvas(input) {
  const canvas = element("canvas", { className: "lesson-digit-input", attrs: { width: SIZE, height: SIZE } });
  Object.assign(canvas.style, { width: "84px", imageRendering: "pixelated", background: "#000" });
  const rgba = new Uint8ClampedArray(SIZE * SIZE * 4);
  input.forEach((value, i) => { rgba.fill(Math.round(value * 255), i * 4, i * 4 + 3); rgba[i * 4 + 3] = 255; });
  canvas.getContext("2d").putImageData(new ImageData(rgba, SIZE, SIZE), 0, 0);
  return canvas;
}

export async function mount(root, ctx) {
  const { t } = ctx;
  const canvas = element("canvas", { className: "lesson-digit-canvas", attrs: { width: SIDE, height: SIDE, role: "img", "aria-label": t("digits.canvas_label") } });
  const clear = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("digits.clear"), attrs: { type: "button" } });
  const input = element("div", { className: "lesson-digit-input-box" });
  const answers = element("div", { className: "small", attrs: { "aria-live": "polite" } });
  root.append(element("div", { className: "d-flex flex-wrap gap-3 align-items-start" },
    element("div", {}, canvas, element("div", { className: "mt-1" }, clear)),
    element("div", {}, element("div", { className: "small text-body-secondary", text: t("lesson.digits.input") }), input),
    element("div", { className: "flex-grow-1" }, answers)),
  element("p", { className: "small mt-2 mb-0" }, element("a", { text: t("lesson.digits.full_page"), attrs: { href: "/digits" } })));
  Object.assign(canvas.style, { width: `${SIDE}px`, maxWidth: "100%", touchAction: "none", cursor: "crosshair",
    border: "2px solid var(--bs-border-color)", borderRadius: ".5rem" });
  const context = canvas.getContext("2d");
  const strokes = SAMPLE.map((stroke) => [...stroke]);

  async function answer() {
    const pixels = context.getImageData(0, 0, SIDE, SIDE);
    const result = preprocess(pixels.data, SIDE, SIDE, 4);
    if (result.reason) {
      input.replaceChildren();
      answers.textContent = t(`digits.reason.${result.reason}`);
      return;
    }
    input.replaceChildren(inputCanvas(result.input));
    const rows = [];
    for (let y = 0; y < SIZE; y += 1) rows.push(Array.from(result.input.slice(y * SIZE, (y + 1) * SIZE)));
    try {
      const body = await ctx.api("/api/v1/digits/predict", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ pixels: rows }) });
      answers.replaceChildren(...body.results.map((r) => element("p", { className: "mb-1", attrs: { "data-kind": r.kind } },
        element("strong", { text: `${t(`digits.model.${r.kind}`)}: ${r.digit}` }),
        ` — ${r.top.map((top) => `${top.digit} ${percent(top.probability)}`).join(" · ")} (${formatNumber(r.inference_ms, { maximumFractionDigits: 2 })} ms)`)));
    } catch (error) {
      answers.textContent = error.status === 404 ? t("lesson.digits.no_models") : error.message;
    }
  }

  let drawing = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (SIDE / box.width), (event.clientY - box.top) * (SIDE / box.height)];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    drawing = [point(event)];
    strokes.push(drawing);
    paint(context, strokes);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    drawing.push(point(event));
    paint(context, strokes);
  });
  canvas.addEventListener("pointerup", () => { drawing = null; answer(); });
  clear.addEventListener("click", () => { strokes.length = 0; paint(context, strokes); answer(); });
  paint(context, strokes);
  await answer();
  root.dataset.state = "done";
}

/** Parameters of a dense layer and of a 3×3 convolution: the numbers the first question is about. */
export function parameterCounts() {
  return { dense: 28 * 28 * 256 + 256, conv: 3 * 3 * 1 * 32, perPosition: 28 * 28 * 32 };
}

function question(root, ctx, text, options, rightValue, explanation, onRight) {
  const feedback = element("div", { className: "small mt-2", attrs: { role: "status" } });
  const buttons = options.map(({ value, label }) => {
    const button = element("button", { className: "btn btn-outline-primary btn-sm", text: label, attrs: { type: "button", "data-value": value } });
    button.addEventListener("click", () => {
      const right = value === rightValue;
      buttons.forEach((other) => other.classList.remove("btn-success", "btn-danger"));
      button.classList.add(right ? "btn-success" : "btn-danger");
      feedback.className = `small mt-2 alert ${right ? "alert-success" : "alert-warning"}`;
      feedback.textContent = `${ctx.t(right ? "lesson.digits.right" : "lesson.digits.wrong")} ${explanation}`;
      if (right) onRight();
    });
    return button;
  });
  root.append(element("p", { className: "mb-2 mt-3", text }), element("div", { className: "d-flex flex-wrap gap-2" }, ...buttons), feedback);
}

export async function exercise(root, ctx) {
  const { t } = ctx;
  const counts = parameterCounts();
  const number = (value) => formatNumber(value);
  const solved = new Set();
  const done = (name) => () => {
    solved.add(name);
    root.dataset.answered = solved.size === 2 ? "right" : "partly";
    if (solved.size === 2) ctx.complete?.();
  };
  question(root, ctx, t("lesson.digits.q1", { dense: number(counts.dense) }),
    [counts.conv, counts.perPosition, counts.dense].map((value) => ({ value, label: number(value) })), counts.conv,
    t("lesson.digits.q1_explain", { conv: number(counts.conv), dense: number(counts.dense) }), done("q1"));
  question(root, ctx, t("lesson.digits.q2"),
    ["mlp", "cnn", "transformer"].map((value) => ({ value, label: t(`lesson.digits.arch_${value}`) })), "transformer",
    t("lesson.digits.q2_explain"), done("q2"));
  root.dataset.state = "ready";
}
