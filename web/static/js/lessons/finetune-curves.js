// The registry's learning curves (card metrics.curves, GET /api/v1/lessons/curves): stage 1 (frozen backbone,
// head only) and, when the version was fine-tuned, stage 2 (last blocks unfrozen) continuing on the same axis.
import { element, percent } from "../render.js";
import { lineChart } from "../lesson_data.js";

const STAGE_COLOURS = { head: "#1f77b4", finetune: "#d62728" };

/** One chart of a version: accuracy per epoch, stage 1 then stage 2, training dashed and validation solid. */
function draw(ctx, box, version) {
  const head = version.curves.head || { accuracy: [], val_accuracy: [] };
  const finetune = version.curves.finetune;
  const total = head.accuracy.length + (finetune ? finetune.accuracy.length : 0);
  const pad = (values, before, after) => [...Array(before).fill(null), ...values, ...Array(after).fill(null)];
  const datasets = [];
  for (const [stage, curve, before] of [["head", head, 0], ["finetune", finetune, head.accuracy.length]]) {
    if (!curve) continue;
    const after = total - before - curve.accuracy.length;
    // stage 2 starts from stage 1's last point, so the lines join
    const join = (key) => (stage === "finetune" && head[key].length ? [head[key].at(-1), ...curve[key]] : curve[key]);
    const start = stage === "finetune" && head.accuracy.length ? before - 1 : before;
    datasets.push({ label: `${ctx.t(`lesson.transfer-learning.stage_${stage}`)} · ${ctx.t("lesson.transfer-learning.curve_train")}`,
      data: pad(join("accuracy"), start, after), colour: STAGE_COLOURS[stage], dashed: true });
    if (curve.val_accuracy) {
      datasets.push({ label: `${ctx.t(`lesson.transfer-learning.stage_${stage}`)} · ${ctx.t("lesson.transfer-learning.curve_validation")}`,
        data: pad(join("val_accuracy"), start, after), colour: STAGE_COLOURS[stage] });
    }
  }
  box.replaceChildren();
  lineChart(box, { labels: Array.from({ length: total }, (_, i) => i + 1), datasets,
    xLabel: ctx.t("lesson.transfer-learning.curve_epoch"), yLabel: ctx.t("lesson.transfer-learning.curve_accuracy") });
  const last = (curve) => (curve?.val_accuracy?.length ? curve.val_accuracy.at(-1) : null);
  const parts = [ctx.t("lesson.transfer-learning.curve_head", { epochs: head.accuracy.length, validation: percent(last(head) ?? NaN) })];
  parts.push(finetune
    ? ctx.t("lesson.transfer-learning.curve_finetune", { epochs: finetune.accuracy.length, validation: percent(last(finetune) ?? NaN) })
    : ctx.t("lesson.transfer-learning.curve_no_finetune"));
  if (version.test_accuracy != null) parts.push(ctx.t("lesson.transfer-learning.curve_test", { accuracy: percent(version.test_accuracy) }));
  box.append(element("p", { className: "small mt-2", text: parts.join(" ") }));
  return { head_epochs: head.accuracy.length, finetune_epochs: finetune ? finetune.accuracy.length : 0,
    head_validation: last(head) ?? 0, finetune_validation: last(finetune) ?? 0 };
}

export async function mount(root, ctx) {
  const started = performance.now();
  const { versions } = await ctx.api("/api/v1/lessons/curves");
  root.append(element("h3", { className: "h6", text: ctx.t("lesson.transfer-learning.curves_title") }));
  if (!versions.length) {
    root.append(element("p", { className: "small", text: ctx.t("lesson.transfer-learning.curves_none") }),
      element("pre", { className: "small mb-0" }, element("code", { text: "riim data import fashion-mnist data/fashion --per-class 60\nriim train --data data/fashion --name fashion --config finetune.yaml   # finetune: {enabled: true}" })));
    root.dataset.result = JSON.stringify({ versions: 0, seconds: (performance.now() - started) / 1000 });
    root.dataset.state = "done";
    return;
  }
  // fine-tuned versions first, newest first within each group
  const ordered = [...versions].sort((a, b) => Number(Boolean(b.curves.finetune)) - Number(Boolean(a.curves.finetune)));
  const select = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "tl-version" } },
    ...ordered.map((v, i) => element("option", { text: `${v.name} ${v.version}${v.curves.finetune ? ` · ${ctx.t("lesson.transfer-learning.finetuned")}` : ""}${v.current ? ` · ${ctx.t("lesson.transfer-learning.current")}` : ""}`, attrs: { value: String(i) } })));
  const box = element("div");
  root.append(element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
    element("label", { className: "small", text: ctx.t("lesson.transfer-learning.curves_version"), attrs: { for: "tl-version" } }), select), box);
  if (!ordered.some((v) => v.curves.finetune)) root.append(element("p", { className: "small text-body-secondary", text: ctx.t("lesson.transfer-learning.curves_no_finetuned") }));
  select.addEventListener("change", () => draw(ctx, box, ordered[Number(select.value)]));
  const shown = draw(ctx, box, ordered[0]);
  root.dataset.result = JSON.stringify({ versions: versions.length, ...shown, seconds: (performance.now() - started) / 1000 });
  root.dataset.expect = JSON.stringify({ head_validation: [0, 1], seconds: [0, 120] });
  root.dataset.state = "done";
}
