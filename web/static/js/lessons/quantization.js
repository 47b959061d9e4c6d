// Quantization lesson: scale and zero point worked out on a real tensor of the served model (its head kernel,
// /api/v1/lessons/quantization), float32 vs int8 ONNX on the server (/api/v1/lessons/formats) and float16 vs
// uint8 TF.js in this browser (edge.js), each with size, latency and whether the answers agree.
import { classify, loadEdgeModel, tfjsFormats } from "../edge.js";
import { element, labelText } from "../render.js";
import { axis, block, chart, done, failed, fixed, megabytes, pct, photoBlob, photoChooser, photoForm, post, smallTable } from "../model-lessons.js";

const URL_QUANT = "/api/v1/lessons/quantization";
const URL_FORMATS = "/api/v1/lessons/formats";
const FORMAT_ORDER = ["keras", "onnx", "onnx_int8", "tflite", "tflite_dynamic", "tflite_int8", "tfjs", "tfjs_uint8"];

const sci = (value) => value.toExponential(2);

function workedExample(parent, ctx, body) {
  const q = body.uint8;
  parent.append(block(ctx.t("lesson.quantization.tensor_title", { shape: body.tensor.shape.join(" × "), count: body.tensor.count.toLocaleString(ctx.lang) }),
    ctx.t("lesson.quantization.tensor_text")));
  parent.append(element("ol", { className: "small lesson-steps" },
    element("li", { text: ctx.t("lesson.quantization.step_range", { min: fixed(q.min, 4), max: fixed(q.max, 4) }) }),
    element("li", { text: ctx.t("lesson.quantization.step_scale", { min: fixed(q.min, 4), max: fixed(q.max, 4), scale: fixed(q.scale, 6) }) }),
    element("li", { text: ctx.t("lesson.quantization.step_zero", { min: fixed(q.min, 4), scale: fixed(q.scale, 6), zero: q.zero_point }) }),
    element("li", { text: ctx.t("lesson.quantization.step_round", { scale: fixed(q.scale, 6), zero: q.zero_point }) })));
  parent.append(smallTable([
    [ctx.t("lesson.quantization.value"), ctx.t("lesson.quantization.q"), ctx.t("lesson.quantization.back"), ctx.t("lesson.quantization.error")],
    ...body.samples.map((row) => [fixed(row.value, 5), String(row.q), fixed(row.back, 5), fixed(row.error, 5)]),
  ]));
  const check = body.tfjs_uint8
    ? ctx.t("lesson.quantization.tfjs_check", { scale: fixed(body.tfjs_uint8.scale, 6), min: fixed(body.tfjs_uint8.min, 4),
      ours: fixed(q.nudged_min, 4), same: Math.abs(body.tfjs_uint8.scale - q.scale) < 1e-9 ? "✓" : "≠" })
    : ctx.t("lesson.quantization.tfjs_none");
  parent.append(element("p", { className: "small", text: ctx.t("lesson.quantization.errors", {
    max: fixed(q.max_abs_error, 5), mean: fixed(q.mean_abs_error, 5), std: fixed(body.weight_std, 4),
    tensor: fixed(body.int8_mean_abs_error.per_tensor, 5), channel: fixed(body.int8_mean_abs_error.per_channel, 5) }) }),
  element("p", { className: "small text-body-secondary", text: check }));
}

function sizesChart(parent, ctx, variants) {
  const rows = FORMAT_ORDER.map((fmt) => variants.find((row) => row.format === fmt)).filter(Boolean);
  parent.append(block(ctx.t("lesson.quantization.sizes_title"), ctx.t("lesson.quantization.sizes_text")));
  chart(parent, {
    type: "bar",
    data: { labels: rows.map((row) => ctx.t(`lesson.model-formats.name.${row.format}`)),
      datasets: [{ label: "MB", data: rows.map((row) => row.bytes / 1e6), backgroundColor: rows.map((row) =>
        /int8|uint8|dynamic/.test(row.format) ? "#198754" : "#6c757d") }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: axis(ctx.t("lesson.quantization.size_axis")) } },
  }, ctx.t("lesson.quantization.sizes_title"));
  return rows;
}

function sideBySide(parent, ctx, title, rows) {
  const [first, second] = rows;
  const agree = second ? (first.label === second.label ? ctx.t("lesson.quantization.agree") : ctx.t("lesson.quantization.disagree")) : "";
  parent.replaceChildren(block(title), smallTable([
    [ctx.t("lesson.quantization.variant"), ctx.t("lesson.quantization.size"), ctx.t("lesson.quantization.latency"), ctx.t("lesson.quantization.answer")],
    ...rows.map((row) => [ctx.t(`lesson.model-formats.name.${row.format}`), megabytes(row.bytes), `${fixed(row.latency_ms, 1)} ms`,
      `${row.unknown ? labelText("unknown") : labelText(row.label)} (${pct(row.confidence)})`]),
  ]), element("p", { className: "small", text: agree }));
}

async function browserRows(ctx, name, card, blob) {
  const formats = tfjsFormats(card).filter((fmt) => fmt === "tfjs" || fmt === "tfjs_uint8");
  const rows = [];
  for (const fmt of formats) {
    const edge = await loadEdgeModel(name, fmt);  // loading also runs the model once (compiles the kernels)
    const result = await classify(edge, blob);
    rows.push({ format: fmt, bytes: card.files[fmt].bytes,  // model.json + its weight shards
      latency_ms: result.timings.inference_ms, label: result.label, unknown: result.unknown, confidence: result.confidence });
  }
  return rows;
}

export async function mount(root, ctx) {
  try {
    const body = await ctx.api(URL_QUANT);
    ctx.shared.quantization = body;
    workedExample(root, ctx, body);
    const variants = sizesChart(root, ctx, body.variants);
    const serverBox = element("div", { className: "mt-3" });
    const browserBox = element("div", { className: "mt-2" });
    const result = {};
    const card = ctx.api(`/api/v1/models/${encodeURIComponent(body.model.name)}/versions/${encodeURIComponent(body.model.version)}`);
    const onServer = async (photo) => {
      const server = await post(ctx, `${URL_FORMATS}?repeats=${ctx.quick ? 2 : 5}`, await photoForm(photo));
      sideBySide(serverBox, ctx, ctx.t("lesson.quantization.server_title"), server.answers);
      if (server.answers.length < 2) serverBox.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.quantization.no_int8") }));
      const [fp32, int8] = server.answers;
      result.server_fp32_ms = fp32.latency_ms;
      if (int8) Object.assign(result, { server_int8_ms: int8.latency_ms, int8_size_ratio: int8.bytes / fp32.bytes,
        server_same_answer: Number(server.agreement.same_answer) });
    };
    const inBrowser = async (photo) => {
      if (!tfjsFormats(await card).length) {
        browserBox.replaceChildren(element("p", { className: "small alert alert-info", text: ctx.t("lesson.quantization.no_tfjs") }));
        return;
      }
      browserBox.replaceChildren(element("p", { className: "small text-body-secondary", text: ctx.t("lesson.quantization.browser_loading") }));
      const rows = await browserRows(ctx, body.model.name, await card, await photoBlob(photo));
      sideBySide(browserBox, ctx, ctx.t("lesson.quantization.browser_title"), rows);
      rows.forEach((row) => { result[`browser_${row.format}_ms`] = row.latency_ms; });
      if (rows.length === 2) Object.assign(result, { uint8_size_ratio: rows[1].bytes / rows[0].bytes,
        browser_same_answer: Number(rows[0].label === rows[1].label) });
    };
    const expect = { zero_point: [0, 255], error_in_steps: [0.2, 0.3], variants: [1, 8], int8_size_ratio: [0.15, 0.5],
      uint8_size_ratio: [0.3, 0.7], server_fp32_ms: [0, 3000], server_int8_ms: [0, 3000], browser_tfjs_ms: [0, 10000],
      browser_tfjs_uint8_ms: [0, 10000] };
    const shown = () => ({ zero_point: body.uint8.zero_point, error_in_steps: body.uint8.mean_abs_error / body.uint8.scale,
      variants: variants.length, ...result });
    // The first result is the worked example and the server's side; this browser's side (two TF.js models to
    // load and compile) fills in after it and adds its numbers to data-result (a failure there is an error).
    const compare = async (photo) => {
      const browser = inBrowser(photo).catch((error) => {
        failed(browserBox, ctx, error);
        root.dataset.state = "error";
      });
      await onServer(photo);
      return { browser };
    };
    root.append(block(ctx.t("lesson.quantization.photo_title"), ctx.t("lesson.quantization.photo_text")));
    const photo = await photoChooser(root, ctx, (chosen) => compare(chosen).catch((error) => failed(serverBox, ctx, error)));
    root.append(serverBox, browserBox);
    const { browser } = await compare(photo);
    done(root, shown(), expect);
    ctx.shared.quantizationBrowser = browser.then(() => {
      if (root.dataset.state === "done") root.dataset.result = JSON.stringify(shown());
    });
  } catch (error) {
    failed(root, ctx, error);
  }
}

/** Work one value out by hand: q = round(w / scale) + zero point, checked against the server's answer. */
export async function exercise(root, ctx) {
  const body = ctx.shared.quantization || await ctx.api(URL_QUANT);
  const sample = body.samples[2];
  const input = element("input", { className: "form-control form-control-sm lesson-q-input", attrs: { type: "number", step: "1",
    min: "0", max: "255", "aria-label": ctx.t("lesson.quantization.your_q") } });
  const button = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.models.check"), attrs: { type: "button" } });
  const feedback = element("div", { className: "small mt-2", attrs: { role: "status" } });
  button.addEventListener("click", () => {
    const right = Number(input.value) === sample.q && input.value !== "";
    feedback.className = `small mt-2 alert ${right ? "alert-success" : "alert-warning"}`;
    feedback.textContent = `${ctx.t(right ? "lesson.models.right" : "lesson.models.wrong")} ${ctx.t("lesson.quantization.explain", {
      value: fixed(sample.value, 5), scale: fixed(body.uint8.scale, 6), ratio: fixed(sample.value / body.uint8.scale, 2),
      zero: body.uint8.zero_point, q: sample.q, back: fixed(sample.back, 5), error: sci(sample.error) })}`;
    root.dataset.answered = right ? "right" : "wrong";
    if (right) ctx.complete?.();
  });
  root.append(element("p", { className: "mb-2", text: ctx.t("lesson.quantization.question", {
    value: fixed(sample.value, 5), scale: fixed(body.uint8.scale, 6), zero: body.uint8.zero_point }) }),
  element("div", { className: "d-flex gap-2 align-items-center" }, input, button), feedback);
  root.dataset.state = "ready";
}
