// Models page: every version of a model with what its card says — accuracy with what it was measured on,
// the fit verdict and its rule, per-class figures, confusion matrix, training curves (Chart.js, vendored),
// formats and pruning — and promote / rollback through the admin API (CSRF token sent from the meta tag).
// Every word comes from the catalogue; numbers are in the page's language.
import { t } from "./i18n.js";
import { api, bindLogin, element, formatNumber, jsonHeaders, labelText, openLogin, percent, table, tOr, why } from "./render.js";

const $ = (id) => document.getElementById(id);
const Chart = globalThis.Chart;
let models = null;
let charts = [];
let serving = {};  // model name → the file the server runs for its current version and why (model-info)

// Tiny values read "< 0,001" (not "2.7e-6", which a student cannot read and which ignores the page's language).
const decimal = (value, digits = 3) => (typeof value === "number"
  ? (Math.abs(value) < 10 ** -digits && value !== 0
    ? t("models.below", { value: formatNumber(10 ** -digits, { maximumFractionDigits: digits }) })
    : formatNumber(value, { maximumFractionDigits: digits }))
  : String(value ?? "—"));
/** The parity report's runtime ("tfjs 4.22.0 wasm in Chromium") in the page's language. */
function runtimeText(runtime) {
  const where = /^(.*) in (\S+)$/.exec(runtime || "");
  return where ? t("models.runtime_in", { runtime: where[1], browser: where[2] }) : runtime || "—";
}
const scrolling = (node) => element("div", { className: "table-responsive" }, node);  // wide tables scroll, not the page
const bytes = (n) => `${formatNumber(n / 2 ** 20, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} MB`;

/** An error where the user is looking: right after ``near`` (the button pressed), else at the top, scrolled to. */
function showError(message, near = null) {
  document.querySelectorAll(".inline-error").forEach((node) => node.remove());
  $("models-error").textContent = near ? "" : message;
  $("models-error").classList.toggle("d-none", !message || Boolean(near));
  if (!message) return;
  if (near) {
    const box = element("div", { className: "alert alert-danger small py-2 mt-2 mb-0 inline-error", text: message, attrs: { role: "alert" } });
    (near.closest("td, .rollback-box") || near).append(box);
    box.scrollIntoView({ block: "nearest" });
  } else {
    $("models-error").scrollIntoView({ block: "nearest" });
  }
}

// --- what the accuracy numbers were measured on -------------------------------------------------------
/** The headline accuracy of a version and what it was measured on (test split, held-out uploads, or the
 * export's check photos for the default model, which is not trained). */
function headline(card) {
  const test = card.metrics?.test;
  if (typeof test?.accuracy === "number") return { value: test.accuracy, text: t("models.acc_test", { n: test.images }) };
  const heldout = card.metrics?.heldout?.new;
  if (typeof heldout?.accuracy === "number") return { value: heldout.accuracy, text: t("models.acc_heldout", { n: heldout.images ?? card.metrics.heldout.images }) };
  const served = card.parity?.report?.formats?.onnx;
  if (typeof served?.accuracy === "number") {
    return { value: served.accuracy, text: t("models.acc_check", { n: card.parity.report.images?.total ?? "?" }) };
  }
  return null;
}

function accuracyCell(card) {
  const found = headline(card);
  if (!found) return element("span", { className: "text-body-secondary", text: t("models.acc_none") });
  return element("span", {}, element("strong", { text: percent(found.value) }), element("span", { className: "small text-body-secondary d-block", text: found.text }));
}

// --- the card, readable ---------------------------------------------------------------------------------
const VERDICTS = ["good_fit", "overfitting", "underfitting"];

/** The fit verdict in words, with the rule that decided it and its numbers (training/diagnosis.py). */
function diagnosis(block) {
  if (!block?.verdict) return "";
  const n = block.numbers || {};
  const rules = block.rules || {};
  const verdict = VERDICTS.includes(block.verdict) ? block.verdict : "other";
  const values = { train: percent(n.train_accuracy ?? 0), val: percent(n.val_accuracy ?? 0), gap: formatNumber((n.gap ?? 0) * 100, { maximumFractionDigits: 1 }),
    rise: percent(n.val_loss_rise ?? 0, 0), epoch: n.epoch ?? "?", stage: tOr(`models.stage_${block.stage}`, block.stage),
    underfit: percent(rules.underfit_accuracy ?? 0.8, 0), gapRule: formatNumber((rules.overfit_gap ?? 0.1) * 100), riseRule: percent(rules.overfit_loss_rise ?? 0.2, 0) };
  const colour = { good_fit: "text-bg-success", overfitting: "text-bg-warning", underfitting: "text-bg-warning" }[verdict] || "text-bg-secondary";
  return element("div", { className: "mb-3", attrs: { id: "diagnosis" } },
    element("h3", { className: "h6" }, t("models.diagnosis"), " ", element("span", { className: `badge ${colour}`, text: tOr(`models.verdict_${verdict}`, block.verdict) })),
    element("p", { className: "small mb-1", text: t(`models.verdict_${verdict}_why`, values) }),
    element("p", { className: "small mb-1 text-body-secondary", text: t("models.diagnosis_numbers", values) }),
    why(t("models.diagnosis_rules", values)));
}

function summaryTable(card) {
  const m = card.metrics || {};
  const rows = [];
  const add = (name, summary, explain) => {
    if (typeof summary?.accuracy !== "number") return;
    rows.push([element("span", {}, name, element("span", { className: "small text-body-secondary d-block", text: explain })),
      percent(summary.accuracy), typeof summary.macro_f1 === "number" ? percent(summary.macro_f1) : "—", formatNumber(summary.images ?? 0)]);
  };
  add(t("models.set_test"), m.test, t("models.set_test_why"));
  add(t("models.set_validation"), m.validation, t("models.set_validation_why"));
  if (m.crossval?.out_of_fold) {
    add(t("models.set_crossval", { folds: m.crossval.folds ?? "?" }), m.crossval.out_of_fold,
      t("models.set_crossval_why", { mean: percent(m.crossval.accuracy?.mean ?? 0), std: formatNumber((m.crossval.accuracy?.std ?? 0) * 100, { maximumFractionDigits: 1 }) }));
  }
  if (m.heldout?.new) add(t("models.set_heldout"), { ...m.heldout.new, images: m.heldout.new.images ?? m.heldout.images }, t("models.set_heldout_why"));
  const head = [t("models.set"), t("models.accuracy_column"), t("models.macro_f1"), t("models.images")];
  const parts = [];
  if (rows.length) parts.push(scrolling(table([head, ...rows], "table table-sm align-middle")), why(t("models.metrics_why")));
  else {
    const found = headline(card);
    parts.push(element("p", { className: "small", attrs: { id: "no-training-metrics" },
      text: found ? t("models.untrained", { accuracy: percent(found.value), what: found.text, top1: percent(card.backbone?.imagenet_top1 ?? 0) }) : t("models.none") }));
  }
  const test = m.test?.per_class ? m.test : m.heldout?.new?.per_class ? m.heldout.new : null;
  if (test) {
    const perClass = [[t("models.class"), t("models.precision"), t("models.recall"), t("models.f1"), t("models.images")],
      ...Object.entries(test.per_class).map(([label, c]) => [labelText(label), percent(c.precision ?? 0), percent(c.recall ?? 0), percent(c.f1 ?? 0), formatNumber(c.support ?? 0)])];
    parts.push(element("h3", { className: "h6 mt-2", text: t("models.per_class") }), scrolling(table(perClass, "table table-sm")), why(t("models.per_class_why")));
  }
  return parts;
}

// --- curves (Chart.js): the legend above the plot, ticks on both axes, in the page's language ---------
const SERIES = { loss: "models.series_train", val_loss: "models.series_validation", accuracy: "models.series_train", val_accuracy: "models.series_validation" };
const COLOURS = ["#0d6efd", "#dc3545", "#198754", "#fd7e14"];

function lineChart(title, kind, series) {
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": `${title}: ${Object.keys(series).map((name) => tOr(SERIES[name], name)).join(", ")}` } });
  const figure = element("figure", { className: "chart-box mb-3" }, element("figcaption", { className: "small fw-semibold", text: title }),
    element("div", { className: "chart-canvas" }, canvas));
  const longest = Math.max(...Object.values(series).map((values) => values.length));
  const percentAxis = kind === "accuracy";
  if (!Chart) {
    figure.append(element("p", { className: "small text-body-secondary", text: t("models.no_chart") }));
    return figure;
  }
  charts.push(new Chart(canvas, {
    type: "line",
    data: {
      labels: Array.from({ length: longest }, (_, i) => i + 1),
      datasets: Object.entries(series).map(([name, values], i) => ({
        label: tOr(SERIES[name], name), data: values, borderColor: COLOURS[i % 4], backgroundColor: COLOURS[i % 4],
        borderDash: name.startsWith("val_") ? [6, 4] : [], pointRadius: longest > 30 ? 0 : 2, borderWidth: 2, tension: 0.15 })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false, locale: document.documentElement.lang === "en" ? "en-GB" : "es-ES",
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "top", labels: { boxWidth: 14, boxHeight: 2 } },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${percentAxis ? percent(item.parsed.y) : decimal(item.parsed.y)}` } } },
      scales: {
        x: { title: { display: true, text: t("models.epoch") }, ticks: { maxTicksLimit: 10 } },
        y: { title: { display: true, text: t(`models.curve_${kind}`) }, beginAtZero: kind === "loss", ...(percentAxis ? { max: 1 } : {}),
          ticks: { maxTicksLimit: 6, ...(percentAxis ? { callback: (value) => percent(value, 0) } : {}) } },
      },
    },
  }));
  return figure;
}

function curves(card) {
  const stages = card.metrics?.curves || {};
  const order = ["head", "finetune"];  // the order training runs them (the card's keys may come sorted)
  const rank = (stage) => (order.includes(stage) ? order.indexOf(stage) : order.length);
  return Object.entries(stages).sort(([a], [b]) => rank(a) - rank(b)).flatMap(([stage, history]) => {
    const numeric = Object.fromEntries(Object.entries(history || {}).filter(([, v]) => Array.isArray(v) && v.length && v.every((x) => typeof x === "number")));
    const groups = [["loss", (k) => k.includes("loss")], ["accuracy", (k) => k.includes("acc")]];
    return groups.map(([kind, match]) => [kind, Object.fromEntries(Object.entries(numeric).filter(([k]) => match(k)))])
      .filter(([, series]) => Object.keys(series).length)
      .map(([kind, series]) => lineChart(`${tOr(`models.stage_${stage}`, stage)} — ${t(`models.curve_${kind}`)}`, kind, series));
  });
}

function confusion(card) {
  const block = card.metrics?.test?.confusion || card.metrics?.crossval?.out_of_fold?.confusion || card.metrics?.crossval?.confusion;
  if (!block) return element("p", { className: "small text-body-secondary", text: t("models.none") });
  const { labels, matrix, files = {} } = block;
  const head = [t("models.true_predicted"), ...labels.map(labelText)];
  const rows = labels.map((truth, i) => [labelText(truth), ...labels.map((predicted, j) => {
    const names = files[truth]?.[predicted] || [];
    const button = element("button", {
      className: `btn btn-sm ${i === j ? "btn-success" : matrix[i][j] ? "btn-danger" : "btn-outline-secondary"}`,
      text: formatNumber(matrix[i][j]),
      attrs: { type: "button", "aria-label": t("models.cell", { truth: labelText(truth), predicted: labelText(predicted), n: matrix[i][j] }) },
    });
    button.disabled = !names.length;
    button.addEventListener("click", () => {
      $("confusion-files").replaceChildren(
        element("p", { className: "mb-1 fw-semibold", text: t("models.cell", { truth: labelText(truth), predicted: labelText(predicted), n: names.length }) }),
        element("ul", {}, ...names.map((name) => element("li", { text: name }))));
    });
    return button;
  })]);
  return table([head, ...rows], "table table-sm confusion w-auto");
}

/** A latency setting of the parity report (ort_2_threads, chromium_wasm…) in words. */
function settingText(setting) {
  const threads = setting.match(/^(ort|litert)_(\d+)_threads?$/);
  if (threads) return t("models.setting_threads", { n: threads[2] });
  return tOr(`models.setting_${setting}`, setting);
}

// One row per exported format: size, and where `riim export` measured it, agreement with Keras,
// |Δp|, accuracy on the check photos and latency per runtime setting (card.parity.report.formats).
function formats(card) {
  const report = card.parity?.report?.formats || {};
  const checked = card.parity?.report?.images?.total;
  const rows = Object.entries(card.files).filter(([fmt]) => report[fmt] || /onnx|tflite|tfjs|keras/.test(fmt))
    .map(([fmt, entry]) => {
      const row = report[fmt] || {};
      const latency = Object.entries(row.latency_ms || {}).map(([setting, p]) => `${settingText(setting)}: ${decimal(p.p50, 1)} / ${decimal(p.p95, 1)}`);
      return [element("span", {}, element("code", { text: fmt }), element("span", { className: "small text-body-secondary d-block", text: tOr(`models.format_${fmt}`, "") })),
        runtimeText(row.runtime), bytes(entry.bytes),
        row.answer_agreement === undefined ? "—" : percent(row.answer_agreement),
        row.imagenet_top1_agreement == null ? "—" : percent(row.imagenet_top1_agreement),
        row.max_abs_dp === undefined ? "—" : decimal(row.max_abs_dp),
        row.accuracy == null ? "—" : percent(row.accuracy), latency.join(" · ") || "—"];
    });
  const head = [t("models.format"), t("models.runtime"), t("models.size"), t("models.agreement"), t("models.tag_agreement"), t("models.max_dp"),
    checked ? t("models.accuracy_check", { n: checked }) : t("models.accuracy_check_none"), t("models.latency")];
  return element("div", {}, servedText(card), element("div", { className: "table-responsive" }, table([head, ...rows], "table table-sm align-middle")),
    why(checked ? `${t("models.formats_why", { n: checked })} ${t("models.latency_why")}` : t("models.formats_not_checked")));
}

/** Which ONNX file the server runs for the current version, and why (models.card.served_format). */
function servedText(card) {
  const served = serving[card.name];
  if (!served || card.version !== models?.current) return "";
  const values = { format: served.format, rule: served.rule, n: served.images ?? "?", minimum: percent(served.minimum, 0),
    agreement: served.decision_agreement == null ? "—" : percent(served.decision_agreement, 0) };
  const key = served.rule !== "auto" ? "models.served_fixed" : served.precision === "int8" ? "models.served_int8"
    : served.decision_agreement == null ? "models.served_fp32_missing" : "models.served_fp32_auto";
  return element("p", { className: "small", id: "served-format", text: t(key, values) });
}

function pruning(card) {
  const block = card.optimization?.pruning;
  const rows = Array.isArray(block) ? block : block?.rows;
  if (!rows?.length) return element("p", { className: "small text-body-secondary", text: t("models.none") });
  const keys = [...new Set(rows.flatMap((row) => Object.keys(row).filter((key) => ["number", "string"].includes(typeof row[key]))))];
  const cell = (key, value) => (typeof value !== "number" ? String(value) : /sparsity|accuracy$/.test(key) ? percent(value) : key.endsWith("bytes") ? bytes(value) : decimal(value));
  return element("div", {}, element("p", { className: "small", text: t("models.pruning_why") }),
    table([keys.map((key) => tOr(`models.pruning_${key}`, key)), ...rows.map((row) => keys.map((key) => (row[key] === undefined ? "—" : cell(key, row[key]))))]));
}

function showVersion(card) {
  const lang = document.documentElement.lang;
  charts.forEach((chart) => chart.destroy());
  charts = [];
  $("detail-heading").textContent = `${card.name} ${card.version}`;
  $("detail-description").textContent = card.description?.[lang] || "";
  $("detail-metrics").replaceChildren(diagnosis(card.metrics?.diagnosis), ...summaryTable(card));
  $("detail-confusion").replaceChildren(confusion(card));
  $("confusion-files").replaceChildren();
  $("version-detail").classList.remove("d-none");  // visible before Chart.js measures its boxes
  const drawn = curves(card);
  $("detail-curves").replaceChildren(...(drawn.length ? drawn : [element("p", { className: "small text-body-secondary", text: t("models.no_curves") })]));
  $("detail-formats").replaceChildren(formats(card));
  $("detail-pruning").replaceChildren(pruning(card));
}

async function adminCall(url, body, button) {
  try {
    await api(url, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(body) });
    showError("");
    await load($("model-name").value);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      showError(t("models.admin_needed"), button);
      openLogin(t("models.login"));
    } else showError(error.message, button);
  }
}

async function load(name) {
  models = await api(`/api/v1/models/${encodeURIComponent(name)}`);
  const lang = document.documentElement.lang;
  const head = [t("models.version"), t("models.created"), t("models.accuracy"), t("models.size"), t("models.actions")];
  const rows = models.versions.map((card) => {
    const current = card.version === models.current;
    const details = element("button", { className: "btn btn-sm btn-outline-primary me-1", text: t("models.details"), attrs: { type: "button" } });
    details.addEventListener("click", () => showVersion(card));
    const actions = element("span", { className: "d-inline-flex flex-wrap gap-1" }, details);
    if (!current) {
      const promote = element("button", { className: "btn btn-sm btn-outline-success admin-action", text: t("models.promote"),
        attrs: { type: "button", "data-version": card.version, title: t("models.admin_hint") } });
      promote.addEventListener("click", () => adminCall(`/api/v1/models/${encodeURIComponent(name)}/promote`, { version: card.version }, promote));
      actions.append(promote);
    }
    const version = element("span", {}, card.version, current ? element("span", { className: "badge text-bg-primary ms-2", text: t("models.current") }) : "");
    const size = Object.values(card.files).reduce((sum, entry) => sum + entry.bytes, 0);
    const created = new Date(card.created);
    const when = Number.isNaN(created.getTime()) ? card.created
      : new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "es-ES", { dateStyle: "medium", timeStyle: "short" }).format(created);
    return [version, when, accuracyCell(card), bytes(size), actions];
  });
  $("versions").replaceChildren(table([head, ...rows], "table table-sm align-middle"));
  // Rolling back needs an earlier promoted version: a first version offers no rollback.
  const canRollback = models.history.length >= 2;
  $("rollback-box").classList.toggle("d-none", !canRollback);
  $("rollback").textContent = canRollback ? t("models.rollback_to", { version: models.history.at(-2) }) : t("models.rollback");
  const current = models.versions.find((card) => card.version === models.current) || models.versions[0];
  if (current) showVersion(current);
  document.body.dataset.state = "done";
}

$("rollback").addEventListener("click", () => adminCall(`/api/v1/models/${encodeURIComponent($("model-name").value)}/rollback`, {}, $("rollback")));
$("model-name").addEventListener("change", (event) => load(event.target.value).catch((error) => showError(error.message)));
$("models-login").addEventListener("click", () => openLogin(t("models.login")));
bindLogin(null, () => { document.querySelectorAll(".inline-error").forEach((node) => node.remove()); });
document.addEventListener("riim:login", () => $("admin-note").classList.add("d-none"));

try {
  const info = await api("/api/v1/model-info");
  serving = Object.fromEntries(info.models.map((model) => [model.name, model.serving]));
  $("model-name").replaceChildren(...info.models.map((model) => element("option", { text: model.name, attrs: { value: model.name } })));
  $("model-name").value = info.default_model;
  await load($("model-name").value);
} catch (error) {
  showError(error.message);
}
