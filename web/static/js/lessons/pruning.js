// Pruning lesson: the pruning table measured by training (sparsity → test accuracy and compressed size), the
// served head's real weights before/after magnitude pruning (histogram), and one photo's answer as more and
// more of the head's weights are set to zero. Numbers from /api/v1/lessons/pruning (app/lesson_models.py).
import { element, labelText } from "../render.js";
import { DEFAULT_SAMPLE, axis, block, chart, choiceExercise, done, failed, fixed, imagenetNames, megabytes, pct, photoChooser, photoForm, post, smallTable } from "../model-lessons.js";

const URL_PRUNING = "/api/v1/lessons/pruning";

function measuredTable(parent, ctx, tables) {
  const measured = tables[0];
  if (!measured) {
    parent.append(element("p", { className: "small alert alert-info", text: ctx.t("lesson.pruning.no_table") }));
    return null;
  }
  const rows = [{ measured_sparsity: 0, test_accuracy: measured.baseline.test_accuracy, gzip_bytes: measured.baseline.gzip_bytes,
    accuracy_drop_pp: 0 }, ...measured.table];
  const source = measured.source === "benchmark"
    ? ctx.t("lesson.pruning.table_source", { images: measured.data.images_per_class, classes: measured.data.classes.length,
      size: measured.data.input_size, test: measured.data.test_images, command: measured.command })
    : ctx.t("lesson.pruning.table_registry", { model: measured.model, version: measured.version });
  parent.append(block(ctx.t("lesson.pruning.table_title"), source));
  chart(parent, {
    type: "line",
    data: {
      labels: rows.map((row) => pct(row.measured_sparsity, 0)),
      datasets: [
        { label: ctx.t("lesson.pruning.accuracy"), data: rows.map((row) => 100 * row.test_accuracy), yAxisID: "y", borderColor: "#0d6efd", backgroundColor: "#0d6efd" },
        { label: ctx.t("lesson.pruning.gzip_mb"), data: rows.map((row) => row.gzip_bytes / 1e6), yAxisID: "size", borderColor: "#fd7e14", backgroundColor: "#fd7e14" },
      ],
    },
    options: { scales: {
      x: axis(ctx.t("lesson.pruning.sparsity_axis")),
      y: axis(ctx.t("lesson.pruning.accuracy"), { min: 0, max: 100 }),
      size: axis(ctx.t("lesson.pruning.gzip_mb"), { position: "right", min: 0, grid: { drawOnChartArea: false } }),
    } },
  }, ctx.t("lesson.pruning.table_title"));
  parent.append(smallTable([
    [ctx.t("lesson.pruning.sparsity"), ctx.t("lesson.pruning.accuracy"), ctx.t("lesson.pruning.drop"), ctx.t("lesson.pruning.gzip")],
    ...rows.map((row) => [pct(row.measured_sparsity), pct(row.test_accuracy), `${fixed(row.accuracy_drop_pp, 1)} pp`, megabytes(row.gzip_bytes)]),
  ]));
  return rows;
}

function histogramChart(parent, ctx, body) {
  const { edges, before, after, zeros_after: zeros } = body.histogram;
  const centres = edges.slice(0, -1).map((edge, i) => fixed((edge + edges[i + 1]) / 2, 3));
  parent.append(block(ctx.t("lesson.pruning.histogram_title", { count: body.tensor.count.toLocaleString(ctx.lang) }),
    ctx.t("lesson.pruning.histogram_text", { sparsity: pct(body.sparsity, 0), threshold: fixed(body.threshold ?? 0, 4),
      zeros: zeros.toLocaleString(ctx.lang) })));
  return chart(parent, {
    type: "bar",
    data: { labels: centres, datasets: [
      { label: ctx.t("lesson.pruning.before"), data: before, backgroundColor: "rgba(108,117,125,0.55)" },
      { label: ctx.t("lesson.pruning.after"), data: after, backgroundColor: "rgba(13,110,253,0.8)" },
    ] },
    options: { scales: { x: axis(ctx.t("lesson.pruning.weight_axis")), y: axis(ctx.t("lesson.pruning.count_axis")) } },
  }, ctx.t("lesson.pruning.histogram_title", { count: body.tensor.count }));
}

function answersTable(parent, ctx, body, sweep, names) {
  const labels = body.model.labels;
  const tagName = (tag) => names?.[tag.index] || tag.label;
  parent.replaceChildren(smallTable([
    [ctx.t("lesson.pruning.sparsity"), ctx.t("lesson.pruning.head_gzip"), ctx.t("lesson.pruning.answer"),
      ...labels.map((label) => `P(${labelText(label)})`), ctx.t("lesson.pruning.top_tag")],
    ...body.answers.map((answer, i) => [pct(answer.sparsity, 0), megabytes(sweep[i].gzip_bytes),
      answer.unknown ? labelText("unknown") : labelText(answer.label),
      ...labels.map((label) => pct(answer.probabilities[label])),
      answer.tags ? `${tagName(answer.tags[0])} (${pct(answer.tags[0].probability)})` : "—"]),
  ]),
  element("p", { className: "small text-body-secondary", text: ctx.t("lesson.pruning.answers_note", { check: fixed(body.max_abs_dp_unpruned, 4) }) }));
}

export async function mount(root, ctx) {
  try {
    const body = await ctx.api(`${URL_PRUNING}?sparsity=50`);
    const rows = measuredTable(root, ctx, body.tables);
    const slider = element("input", { className: "form-range", attrs: { type: "range", min: "0", max: "95", step: "5", value: "50",
      "aria-label": ctx.t("lesson.pruning.slider") } });
    const sliderLabel = element("label", { className: "form-label small mb-0", text: ctx.t("lesson.pruning.slider_value", { value: "50 %" }) });
    const histogramBox = element("div");
    root.append(element("div", { className: "mt-3" }, sliderLabel, slider), histogramBox);
    let histogram = histogramChart(histogramBox, ctx, body);
    slider.addEventListener("change", async () => {
      sliderLabel.textContent = ctx.t("lesson.pruning.slider_value", { value: `${slider.value} %` });
      try {
        const next = await ctx.api(`${URL_PRUNING}?sparsity=${slider.value}`);
        histogram.destroy();
        histogramBox.replaceChildren();
        histogram = histogramChart(histogramBox, ctx, next);
      } catch (error) {
        failed(histogramBox, ctx, error);
      }
    });
    root.append(block(ctx.t("lesson.pruning.photo_title"), ctx.t("lesson.pruning.photo_text")));
    const answersBox = element("div");
    const show = async (photo) => {
      const [answers, names] = await Promise.all([post(ctx, URL_PRUNING, await photoForm(photo)), imagenetNames(ctx)]);
      answersTable(answersBox, ctx, answers, body.sweep, names);
      ctx.shared.pruning = answers;
      return answers;
    };
    const photo = await photoChooser(root, ctx, (chosen) => show(chosen).catch((error) => failed(answersBox, ctx, error)));
    root.append(answersBox);
    const answers = await show(photo);
    const gzip = body.sweep.map((row) => row.gzip_bytes);
    const result = { head_gzip_ratio_95: gzip.at(-1) / gzip[0], head_zeros_50: body.histogram.zeros_after / body.tensor.count,
      unpruned_max_abs_dp: answers.max_abs_dp_unpruned };
    const expect = { head_gzip_ratio_95: [0.02, 0.6], head_zeros_50: [0.49, 0.51], unpruned_max_abs_dp: [0, 0.01] };
    if (rows) {
      Object.assign(result, { table_baseline_accuracy: rows[0].test_accuracy, table_gzip_ratio_last: rows.at(-1).gzip_bytes / rows[0].gzip_bytes });
      Object.assign(expect, { table_baseline_accuracy: [0.5, 1], table_gzip_ratio_last: [0.05, 0.9] });
    }
    done(root, result, expect);
  } catch (error) {
    failed(root, ctx, error);
  }
}

/** Predict, then reveal: the sparsity at which the chosen photo's answer first changes (the demo computed it). */
export async function exercise(root, ctx) {
  const sparsities = [0.25, 0.5, 0.75, 0.9, 0.95];
  const options = [...sparsities.map((value) => ({ value, text: pct(value, 0) })), { value: "never", text: ctx.t("lesson.pruning.never") }];
  choiceExercise(root, ctx, ctx.t("lesson.pruning.question"), options, async (value) => {
    ctx.shared.pruning ??= await post(ctx, URL_PRUNING, await photoForm({ name: DEFAULT_SAMPLE }));
    const { answers } = ctx.shared.pruning;
    const change = answers.find((answer) => answer.label !== answers[0].label);
    const right = change ? value === change.sparsity : value === "never";
    const explanation = change
      ? ctx.t("lesson.pruning.explain_change", { first: labelText(answers[0].label), sparsity: pct(change.sparsity, 0),
        label: labelText(change.label) })
      : ctx.t("lesson.pruning.explain_never", { first: labelText(answers[0].label) });
    return { right, explanation };
  });
}
