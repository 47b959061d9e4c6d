// Model formats lesson: one photo through the served model's ONNX files on the server and its TF.js file in
// this browser (live), next to the export's parity report for every format (Keras, ONNX, TFLite, TF.js,
// measured by `riim export` on real photos), and what the ONNX file contains (inputs, outputs, operators).
import { classify, loadEdgeModel, tfjsFormats } from "../edge.js";
import { element, labelText } from "../render.js";
import { DEFAULT_SAMPLE, axis, block, chart, choiceExercise, done, failed, fixed, megabytes, pct, photoBlob, photoChooser, photoForm, post, smallTable } from "../model-lessons.js";

const URL_FORMATS = "/api/v1/lessons/formats";

const shape = (dims) => `[${dims.map((d) => (d === null ? "N" : d)).join(", ")}]`;

function liveTable(parent, ctx, rows) {
  parent.replaceChildren(block(ctx.t("lesson.model-formats.live_title"), ctx.t("lesson.model-formats.live_text")), smallTable([
    [ctx.t("lesson.model-formats.format"), ctx.t("lesson.model-formats.where"), ctx.t("lesson.model-formats.answer"), ctx.t("lesson.model-formats.latency")],
    ...rows.map((row) => [ctx.t(`lesson.model-formats.name.${row.format}`), ctx.t(`lesson.model-formats.where_${row.where}`),
      `${row.unknown ? labelText("unknown") : labelText(row.label)} (${pct(row.confidence)})`, `${fixed(row.latency_ms, 1)} ms`]),
  ]));
}

function parityTable(parent, ctx, parity) {
  if (!parity) {
    parent.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.model-formats.no_parity") }));
    return [];
  }
  const rows = Object.entries(parity.formats);
  parent.append(block(ctx.t("lesson.model-formats.parity_title"), ctx.t("lesson.model-formats.parity_text", {
    images: parity.images.total, reference: ctx.t(`lesson.model-formats.name.${parity.reference}`) })), smallTable([
    [ctx.t("lesson.model-formats.format"), ctx.t("lesson.model-formats.runtime"), ctx.t("lesson.quantization.size"), ctx.t("lesson.model-formats.agreement"),
      ctx.t("lesson.model-formats.max_dp"), ctx.t("lesson.model-formats.accuracy")],
    ...rows.map(([fmt, row]) => [ctx.t(`lesson.model-formats.name.${fmt}`), row.runtime, megabytes(row.bytes), pct(row.top1_agreement, 0),
      row.max_abs_dp < 0.001 ? `< ${fixed(0.001, 3)}` : fixed(row.max_abs_dp, 3),
      row.accuracy === undefined || row.accuracy === null ? "—" : pct(row.accuracy, 0)]),
  ]));
  return rows.map(([fmt]) => fmt);
}

function graphPart(parent, ctx, graph) {
  parent.append(block(ctx.t("lesson.model-formats.graph_title"), ctx.t("lesson.model-formats.graph_text", { producer: graph.producer || "?" })));
  parent.append(smallTable([
    [ctx.t("lesson.model-formats.tensor"), ctx.t("lesson.model-formats.name_col"), ctx.t("lesson.model-formats.shape"), ctx.t("lesson.model-formats.type")],
    ...graph.inputs.map((value) => [ctx.t("lesson.model-formats.input"), value.name, shape(value.shape), value.type]),
    ...graph.outputs.map((value) => [ctx.t("lesson.model-formats.output"), value.name, shape(value.shape), value.type]),
  ]));
  const summary = graph.summary;
  if (!summary) {
    parent.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.model-formats.no_summary") }));
    return null;
  }
  parent.append(element("p", { className: "small", text: ctx.t("lesson.model-formats.summary", {
    nodes: summary.nodes, parameters: summary.parameters.toLocaleString(ctx.lang), blocks: summary.blocks }) }));
  const ops = Object.entries(summary.op_types).sort((a, b) => b[1] - a[1]);
  chart(parent, {
    type: "bar",
    data: { labels: ops.map(([op]) => op), datasets: [{ label: ctx.t("lesson.model-formats.nodes"), data: ops.map(([, count]) => count), backgroundColor: "#0d6efd" }] },
    options: { plugins: { legend: { display: false } }, scales: { x: axis(ctx.t("lesson.model-formats.op_axis")), y: axis(ctx.t("lesson.model-formats.nodes")) } },
  }, ctx.t("lesson.model-formats.graph_title"));
  return summary;
}

export async function mount(root, ctx) {
  try {
    const liveBox = element("div");
    const infoBox = element("div", { className: "mt-3" });
    let first = null;
    const info = await ctx.api("/api/v1/model-info");
    const name = info.class_model || info.default_model;  // the model the server's lesson endpoint serves
    const version = info.models.find((model) => model.name === name)?.current;
    const card = await ctx.api(`/api/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
    const inBrowser = async (photo) => {  // TF.js in this page, while the server works on the same photo
      if (!tfjsFormats(card).includes("tfjs")) return null;
      const edge = await loadEdgeModel(name, "tfjs");
      return classify(edge, await photoBlob(photo));  // loading already compiled the kernels
    };
    const run = async (photo) => {
      const browser = inBrowser(photo);
      const server = await post(ctx, `${URL_FORMATS}?repeats=${ctx.quick ? 2 : 5}`, await photoForm(photo));
      const rows = server.answers.map((row) => ({ ...row, where: "server" }));
      liveTable(liveBox, ctx, rows);
      const result = await browser;
      if (result) {
        rows.push({ format: "tfjs", where: "browser", label: result.label, unknown: result.unknown, confidence: result.confidence,
          latency_ms: result.timings.inference_ms });
        liveTable(liveBox, ctx, rows);
      } else {
        liveBox.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.quantization.no_tfjs") }));
      }
      ctx.shared.formats = { server, rows };
      return server;
    };
    const photo = await photoChooser(root, ctx, (chosen) => run(chosen).catch((error) => failed(liveBox, ctx, error)));
    root.append(liveBox, infoBox);
    first = await run(photo);
    const parity = parityTable(infoBox, ctx, first.parity);
    const summary = graphPart(infoBox, ctx, first.graph);
    const rows = ctx.shared.formats.rows;
    const result = { live_answers: rows.length, outputs: first.graph.outputs.length, parity_formats: parity.length };
    const expect = { live_answers: [1, 3], outputs: [1, 8], parity_formats: [0, 8] };
    rows.forEach((row) => { result[`${row.where}_${row.format}_ms`] = row.latency_ms; expect[`${row.where}_${row.format}_ms`] = [0, 10000]; });
    if (summary) {
      Object.assign(result, { nodes: summary.nodes, parameters: summary.parameters });
      Object.assign(expect, { nodes: [20, 5000], parameters: [1e5, 1e8] });
    }
    done(root, result, expect);
  } catch (error) {
    failed(root, ctx, error);
  }
}

const perPhoto = (value) => value.shape.slice(1).reduce((product, d) => product * d, 1);

/** How many numbers per photo does the ``embedding`` output hold? Options and answer from the ONNX file's outputs. */
export async function exercise(root, ctx) {
  const outputs = ctx.shared.formats?.server.graph.outputs
    || (await post(ctx, URL_FORMATS, await photoForm({ name: DEFAULT_SAMPLE }))).graph.outputs;
  const wanted = outputs.find((value) => value.name === "embedding") || outputs[0];
  const options = outputs.map((value) => ({ value: value.name, text: perPhoto(value).toLocaleString(ctx.lang) }));
  choiceExercise(root, ctx, ctx.t("lesson.model-formats.question", { name: wanted.name }), options, (name) => ({
    right: name === wanted.name,
    explanation: ctx.t("lesson.model-formats.explain", { name: wanted.name, shape: shape(wanted.shape),
      count: perPhoto(wanted).toLocaleString(ctx.lang),
      others: outputs.filter((value) => value !== wanted).map((value) => `${value.name} ${shape(value.shape)}`).join(", ") }),
  }));
}
