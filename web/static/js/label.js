// Labelling page: the uncertainty-ordered queue of stored uploads, labelling with keyboard shortcuts,
// k-means groups for bulk labelling, CSV/JSON export/import, and training jobs with live progress and
// the held-out before/after table (admin API; the CSRF token comes from the meta tag).
import { t } from "./i18n.js";
import { api, bindLogin, element, jsonHeaders, labelText, openLogin, percent, table, tOr, why } from "./render.js";

const $ = (id) => document.getElementById(id);
const LABELLING = "/api/v1/labelling/projects";
let project = null;
let items = [];
let index = 0;
let polling = null;

function showError(message) {
  $("label-error").textContent = message;
  $("label-error").classList.toggle("d-none", !message);
}

const post = (url, body) => api(url, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(body) });
const projectUrl = (path = "") => `${LABELLING}/${encodeURIComponent(project.name)}${path}`;

function queueQuery() {
  const query = new URLSearchParams({ order: $("order").value, status: $("status").value, limit: "60" });
  if ($("predicted").value.trim()) query.set("predicted", classFromText($("predicted").value));
  if ($("unknown").checked) query.set("unknown", "1");
  if ($("since").value) query.set("since", $("since").value);
  if ($("until").value) query.set("until", `${$("until").value}T23:59:59`);
  return query;
}

// "Clase predicha" accepts a class as the page shows it ("gato") or as stored ("cat").
function knownClasses() {
  return [...new Set([...(project?.classes || []), "cat", "dog", "unknown"])];
}
function classFromText(text) {
  const wanted = text.trim().toLocaleLowerCase();
  return knownClasses().find((name) => labelText(name).toLocaleLowerCase() === wanted) || text.trim();
}
function fillPredictedOptions() {
  $("predicted-options").replaceChildren(...knownClasses().flatMap((name) => [...new Set([labelText(name), name])]
    .map((value) => element("option", { attrs: { value } }))));
}

// A class as the page names it: "gato (cat)" in Spanish, "cat" in English (as on the class buttons).
const classText = (name) => (labelText(name) === name ? name : `${labelText(name)} (${name})`);

// Every class of the project has its row, 0 / 0 before anything is labelled (no empty table).
function showCounts(counts) {
  const names = [...new Set([...(project?.classes || []), ...Object.keys(counts.classes)])];
  const rows = names.map((label) => {
    const c = counts.classes[label] || { train: 0, holdout: 0 };
    return [classText(label), String(c.train), String(c.holdout)];
  });
  $("counts").replaceChildren(table([[t("labelling.count_class"), t("labelling.count_train"), t("labelling.count_holdout")], ...rows]));
}

// Load the queue; ``keep`` (the image just labelled, or the one shown) keeps your place: the same image if it
// is still in the list, else the one that took its place.
async function loadQueue(keep = null) {
  const answer = await api(`${projectUrl("/queue")}?${queueQuery()}`);
  project = answer.project;
  items = answer.items;
  const kept = keep ? items.findIndex((item) => item.sha256 === keep.sha256) : -1;
  index = kept >= 0 ? kept : keep ? Math.min(keep.index, Math.max(items.length - 1, 0)) : 0;
  fillPredictedOptions();
  $("total").textContent = answer.total;
  showCounts(answer.counts);
  $("export-csv").href = projectUrl("/labels?format=csv");
  $("export-json").href = projectUrl("/labels?format=json");
  $("queue").replaceChildren(...items.map((item, i) => {
    const thumb = element("img", { className: "img-thumbnail queue-thumb", attrs: { src: `/api/v1/uploads/${item.sha256}`, alt: item.filename || item.sha256.slice(0, 8), width: "56", height: "56", "data-index": i, tabindex: "0" } });
    thumb.addEventListener("click", () => show(i));
    thumb.addEventListener("keydown", (event) => { if (event.key === "Enter") show(i); });
    return thumb;
  }));
  await show(index);
  document.body.dataset.state = "ready";
}

async function show(i) {
  index = Math.max(0, Math.min(i, items.length - 1));
  const item = items[index];
  $("empty").classList.toggle("d-none", Boolean(item));
  $("current").classList.toggle("d-none", !item);
  $("queue").querySelectorAll("img").forEach((thumb, k) => {
    thumb.classList.toggle("current", k === index);
    if (k === index) thumb.setAttribute("aria-current", "true");
    else thumb.removeAttribute("aria-current");
  });
  $("queue").querySelector("img.current")?.scrollIntoView({ block: "nearest", inline: "nearest" });
  if (!item) return;
  $("current-image").src = `/api/v1/uploads/${item.sha256}`;
  $("current-image").dataset.sha256 = item.sha256;
  const p = item.prediction;
  const best = p?.probabilities && Object.keys(p.probabilities).length
    ? Object.entries(p.probabilities).reduce((a, b) => (b[1] > a[1] ? b : a))[0] : null;
  const said = { model: p?.model, version: p?.version, label: labelText(p?.label), best: labelText(best),
    confidence: percent(p?.confidence ?? 0), uncertainty: percent(item.uncertainty ?? 0) };
  $("current-prediction").replaceChildren(...(p ? [t(p.unknown && best ? "labelling.prediction_unknown" : "labelling.prediction", said),
    why(t("labelling.uncertainty_why"))] : [t("labelling.no_prediction")]));
  $("class-buttons").replaceChildren(...project.classes.map((name, k) => {
    const shown = classText(name);
    const chosen = item.label?.label === name;  // in the "labelled" view, the class it already has is the filled button
    const button = element("button", { className: `btn ${chosen ? "btn-primary" : "btn-outline-primary"}`, text: k < 9 ? `${k + 1} · ${shown}` : shown,
      attrs: { type: "button", "data-class": name, "aria-pressed": String(chosen) } });
    button.addEventListener("click", () => label({ label: name }));
    return button;
  }));
  const history = await api(projectUrl(`/labels/${item.sha256}/history`));
  $("history-block").classList.toggle("d-none", !history.history.length);
  $("history").replaceChildren(...history.history.map((row) => element("li", { text: t("labelling.history_row", {
    created: row.created.replace("T", " ").slice(0, 19), user: row.user,
    what: row.label ? classText(row.label) : tOr(`labelling.did_${row.status}`, row.status) }) })));
}

async function label(decision) {
  const item = items[index];
  if (!item) return;
  try {
    await post(projectUrl("/labels"), { sha256: item.sha256, status: decision.status || "labelled", label: decision.label });
    await loadQueue({ sha256: item.sha256, index });
  } catch (error) {
    showError(error.message);
  }
}

async function findClusters() {
  const answer = await post(`${projectUrl("/clusters")}?k=6`, {});
  $("clusters").replaceChildren(...answer.clusters.map((group, k) => {
    // No class is chosen for a group until you choose one: one click must not label a whole group by default.
    const select = element("select", { className: "form-select form-select-sm", attrs: { "aria-label": t("labelling.label_cluster") } },
      element("option", { text: t("labelling.choose_class"), attrs: { value: "" } }),
      ...project.classes.map((name) => element("option", { text: labelText(name), attrs: { value: name } })));
    const apply = element("button", { className: "btn btn-sm btn-outline-primary", text: t("labelling.add"), attrs: { type: "button" } });
    apply.disabled = true;
    select.addEventListener("change", () => { apply.disabled = !select.value; });
    apply.addEventListener("click", async () => {
      await post(projectUrl("/labels"), { items: group.members.map((sha256) => ({ sha256, label: select.value })) });
      await loadQueue();
      await findClusters();
    });
    const thumbs = group.members.slice(0, 12).map((sha) => element("img", { className: "img-thumbnail cluster-thumb", attrs: { src: `/api/v1/uploads/${sha}`, alt: sha.slice(0, 8), width: "40", height: "40" } }));
    return element("div", { className: "card card-body mb-2" }, element("div", { className: "small", text: t("labelling.cluster", { index: k + 1, count: group.members.length }) }),
      element("div", {}, ...thumbs), element("div", { className: "d-flex gap-2 mt-1" }, select, apply));
  }));
}

const seconds = (value) => (value < 60 ? `${Math.round(value)} s`
  : `${Math.floor(value / 60)} min ${String(Math.round(value % 60)).padStart(2, "0")} s`);
const stageName = (name) => (t(`labelling.stage_${name}`) === `labelling.stage_${name}` ? name : t(`labelling.stage_${name}`));
const more = (label, count) => t("labelling.label_more", { label, count });

// The held-out evaluation: the count, accuracy with its 95 % interval, per-class figures, and whether the
// comparison can be trusted (below the minimum per class it is not, and promoting is not suggested).
function beforeAfter(result, job) {
  if (!result?.new) return "";
  const { parent, delta } = result;
  const fmt = (value) => (value === undefined || value === null ? "—" : value.toFixed(3));
  const accuracy = (s) => (s.correct === undefined ? percent(s.accuracy) : `${percent(s.accuracy)} (${s.correct}/${s.images})`);
  const interval = (s) => (s.accuracy_interval ? `${percent(s.accuracy_interval[0])} – ${percent(s.accuracy_interval[1])}` : "—");
  const row = (name, get, diff) => [name, parent ? get(parent) : "—", get(result.new), delta && diff ? diff(delta) : "—"];
  const rows = [row(t("labelling.metric_accuracy"), accuracy, (d) => fmt(d.accuracy)),
    row(t("labelling.metric_interval"), interval),
    row(t("labelling.metric_macro_f1"), (s) => fmt(s.macro_f1), (d) => fmt(d.macro_f1)),
    ...Object.keys(result.new.per_class).flatMap((label) => [
      row(t("labelling.metric_class_images", { label }), (s) => String(s.per_class[label]?.support ?? "—")),
      row(t("labelling.metric_class_recall", { label }), (s) => fmt(s.per_class[label]?.recall), (d) => fmt(d.per_class[label]?.recall)),
      row(t("labelling.metric_class_f1", { label }), (s) => fmt(s.per_class[label]?.f1), (d) => fmt(d.per_class[label]?.f1))])];
  const notes = [];
  if (result.meaningful === false) {
    const images = job.options?.images || {};
    const needs = Object.keys(result.too_small || {}).map((label) => more(label, images[label]?.holdout_more ?? "?"));
    notes.push(element("p", { className: "alert alert-warning small py-2 mb-2", attrs: { "data-meaningful": "false" },
      text: `${t("labelling.not_meaningful", { minimum: result.min_heldout_per_class, needs: needs.join(", ") })} ${
        t("labelling.every_note", { every: job.options?.holdout_every ?? 5 })}` }));
  } else if (parent) {
    notes.push(element("p", { className: "small mb-1", attrs: { "data-meaningful": "true" },
      text: t(job.result && isBetter(result) ? "labelling.better" : "labelling.not_better") }));
    if (result.overlap) notes.push(element("p", { className: "small mb-1", text: t("labelling.overlap") }));
  }
  return element("div", { attrs: { id: "before-after" } },
    element("h3", { className: "h6", text: t(parent ? "labelling.before_after" : "labelling.evaluation", { images: result.images.length }) }),
    ...notes,
    table([[t("labelling.metric"), t("labelling.parent", { version: parent?.version || "—" }), t("labelling.new", { version: result.new.version }), t("labelling.delta")], ...rows]));
}

const isBetter = (result) => result.meaningful !== false && Boolean(result.parent)
  && [result.new.accuracy - result.parent.accuracy, result.new.macro_f1 - result.parent.macro_f1].find((d) => d !== 0) > 0;

function stageRow(stage, progress) {
  const name = stageName(stage.name);
  let text;
  if (stage.state === "done") text = t("labelling.stage_row_done", { stage: name, time: seconds(stage.seconds ?? 0) });
  else if (stage.state === "pending") {
    text = t("labelling.stage_row_pending", { stage: name, estimate: stage.eta_seconds ? t("labelling.stage_estimate", { time: seconds(stage.eta_seconds) }) : "" });
  } else if (stage.state === "running") {
    const detail = [];
    if (stage.steps) detail.push(t(`labelling.step_${stage.unit || "step"}`, { step: stage.step ?? 0, steps: stage.steps }));
    if (stage.unit === "epoch" && progress.loss !== undefined) {
      detail.push(t("labelling.train_metrics", { loss: progress.loss.toFixed(3), accuracy: percent(progress.accuracy ?? 0) }));
    }
    if (stage.seconds != null) detail.push(t("labelling.elapsed", { time: seconds(stage.seconds) }));
    detail.push(stage.eta_seconds == null ? t("labelling.eta_unknown")
      : stage.eta_seconds < 1 ? t("labelling.eta_finishing") : t("labelling.eta", { time: seconds(stage.eta_seconds) }));
    text = t("labelling.stage_row_running", { stage: name, detail: detail.join(" · ") });
  } else text = t(`labelling.stage_row_${stage.state}`, { stage: name });
  return element("li", { className: stage.state === "running" ? "fw-semibold" : stage.state === "pending" ? "text-body-secondary" : "",
    attrs: { "data-stage": stage.name, "data-state": stage.state }, text });
}

// After success: one summary (time, held-out accuracy with its interval, calibration, published or not)
// instead of the last progress line.
function summary(job) {
  const result = job.result || {};
  const total = (job.stages || []).reduce((sum, stage) => sum + (stage.seconds || 0), 0);
  const lines = [t("labelling.summary", { time: seconds(total), version: job.version })];
  if (result.new?.accuracy_interval) {
    lines.push(t("labelling.summary_heldout", { images: result.new.images, accuracy: percent(result.new.accuracy),
      low: percent(result.new.accuracy_interval[0]), high: percent(result.new.accuracy_interval[1]) }));
  }
  if (result.calibration?.calibrated) lines.push(t("labelling.summary_calibrated", { auroc: (result.calibration.auroc ?? 0).toFixed(2) }));
  else if (result.calibration) lines.push(t("labelling.summary_not_calibrated", { error: result.calibration.error || "" }));
  lines.push(job.promoted ? t("labelling.promoted", { version: job.version })
    : t("labelling.summary_waiting", { version: job.version, current: job.parent_version || "—" }));
  return element("div", { className: "alert alert-success small py-2", attrs: { id: "job-summary" } },
    ...lines.map((line) => element("p", { className: "mb-1", text: line })));
}

function showJob(job) {
  const progress = job.progress || {};
  const active = ["queued", "running"].includes(job.state);
  const parts = [element("div", { className: "fw-semibold", attrs: { "data-state": job.state, id: "job-state" },
    text: t("labelling.job", { id: job.id, state: t(`labelling.state_${job.state}`) }) })];
  (job.options?.excluded || []).forEach((entry) => parts.push(element("p", { className: "alert alert-warning small py-2 mb-2",
    attrs: { "data-excluded": entry.label }, text: `${t("labelling.excluded", { label: entry.label, train: entry.train,
      minimum: entry.minimum, more: entry.label_more ?? "?" })} ${t("labelling.every_note", { every: job.options.holdout_every ?? 5 })}` })));
  if (job.error) parts.push(element("div", { className: "small text-danger", text: job.error }));
  if (job.state === "succeeded") parts.push(summary(job));
  if (job.stages) {
    parts.push(element("ol", { className: "list-unstyled small mb-1", attrs: { id: "job-stages", "aria-label": t("labelling.stages") } },
      ...job.stages.map((stage) => stageRow(stage, progress))));
  }
  if (active && job.eta_seconds != null) parts.push(element("div", { className: "small", attrs: { id: "job-eta" }, text: t("labelling.job_eta", { time: seconds(job.eta_seconds) }) }));
  if (active) {
    const cancel = element("button", { className: "btn btn-sm btn-outline-danger", text: t("labelling.cancel"), attrs: { type: "button" } });
    cancel.addEventListener("click", () => post(`/api/v1/jobs/${job.id}/cancel`, {}).then(showJob).catch((e) => showError(e.message)));
    parts.push(cancel);
  }
  parts.push(beforeAfter(job.result, job));
  if (job.state === "succeeded" && !job.promoted) {
    const suggested = job.result && isBetter(job.result);
    const promote = element("button", { className: `btn btn-sm ${suggested ? "btn-success" : "btn-outline-secondary"}`, attrs: { type: "button", id: "promote" },
      text: t(suggested ? "labelling.promote" : "labelling.promote_anyway", { version: job.version }) });
    promote.addEventListener("click", () => post(`/api/v1/models/${encodeURIComponent(job.project)}/promote`, { version: job.version })
      .then(() => showJob({ ...job, promoted: true })).catch((e) => showError(e.message)));
    parts.push(promote);
  } else if (job.state === "succeeded") {
    const rollback = element("button", { className: "btn btn-sm btn-outline-danger", text: t("labelling.rollback"), attrs: { type: "button" } });
    rollback.addEventListener("click", () => post(`/api/v1/models/${encodeURIComponent(job.project)}/rollback`, {}).catch((e) => showError(e.message)));
    parts.push(rollback);
  }
  parts.push(element("a", { className: "small d-block", text: t("labelling.log"), attrs: { href: `/api/v1/jobs/${job.id}/log`, target: "_blank" } }));
  $("job").replaceChildren(...parts);
  clearTimeout(polling);
  if (active) {
    polling = setTimeout(() => api(`/api/v1/jobs/${job.id}`).then(showJob).catch((e) => showError(e.message)), 1000);
  }
}

async function loadProjects(selected) {
  const answer = await api(LABELLING);
  $("project").replaceChildren(...answer.projects.map((p) => element("option", { text: p.name, attrs: { value: p.name } })));
  if (!answer.projects.length) return;
  $("project").value = selected || answer.projects[0].name;
  project = answer.projects.find((p) => p.name === $("project").value);
  await loadQueue();
  const jobs = await api(`/api/v1/jobs?project=${encodeURIComponent(project.name)}`);
  if (jobs.jobs.length) showJob(jobs.jobs[0]);
  else $("job").replaceChildren();
}

async function start() {
  const me = await api("/api/v1/auth/me");
  document.querySelector('meta[name="csrf-token"]').content = me.csrf_token;
  if (!me.user?.is_admin) openLogin(t("labelling.login"));
  $("label-login-note").classList.toggle("d-none", Boolean(me.user?.is_admin));
  $("workspace").classList.toggle("d-none", !me.user?.is_admin);
  if (me.user?.is_admin) await loadProjects();
}

const guard = (action) => (...args) => Promise.resolve(action(...args)).then(() => showError("")).catch((error) => showError(error.message));

// Keyboard shortcuts work whatever control was used last (a filter menu, a button, a checkbox), but not while
// typing in a text field: Esc or Enter there gives the keys back; the hint under the image says which is on.
const TYPING = new Set(["text", "search", "email", "number", "password", "date", "url", "tel"]);
const isTyping = (target) => target?.isContentEditable || target?.tagName === "TEXTAREA"
  || (target?.tagName === "INPUT" && TYPING.has(target.type));

function showShortcutState() {
  const typing = isTyping(document.activeElement);
  $("shortcut-hint").dataset.active = String(!typing);
  $("shortcut-hint").textContent = typing ? t("labelling.shortcuts_paused") : t("labelling.shortcuts");
}
document.addEventListener("focusin", showShortcutState);
document.addEventListener("focusout", () => setTimeout(showShortcutState, 0));

document.addEventListener("keydown", (event) => {
  if (!project || $("workspace").classList.contains("d-none")) return;
  if (isTyping(event.target)) {
    if (event.key === "Escape" || (event.key === "Enter" && event.target.id === "predicted")) event.target.blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (/^[1-9]$/.test(key) && project.classes[Number(key) - 1]) label({ label: project.classes[Number(key) - 1] });
  else if (key === "s") label({ status: "skipped" });
  else if (key === "b") label({ status: "bad" });
  else if (key === "n") { event.preventDefault(); $("new-class").focus(); }
  else if (key === "j") show(index + 1);
  else if (key === "k") show(index - 1);
  else return;
  event.preventDefault();
});
$("next").addEventListener("click", () => show(index + 1));
$("previous").addEventListener("click", () => show(index - 1));
$("new-class-form").addEventListener("submit", (event) => { event.preventDefault(); label({ label: $("new-class").value.trim() }); $("new-class").value = ""; });
$("skip").addEventListener("click", () => label({ status: "skipped" }));
$("bad").addEventListener("click", () => label({ status: "bad" }));
$("filters").addEventListener("change", guard(() => loadQueue()));
$("filters").addEventListener("submit", (event) => event.preventDefault());
$("project").addEventListener("change", guard(() => loadProjects($("project").value)));
$("find-clusters").addEventListener("click", guard(findClusters));
$("project-form").addEventListener("submit", guard(async (event) => {
  event.preventDefault();
  const classes = $("project-classes").value.split(",").map((c) => c.trim()).filter(Boolean);
  const created = await post(LABELLING, { name: $("project-name").value.trim(), classes });
  $("project-form").reset();
  await loadProjects(created.name);
}));
$("import").addEventListener("change", guard(async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  const headers = { "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content };
  const answer = file.name.endsWith(".json")
    ? await api(projectUrl("/labels/import"), { method: "POST", headers: jsonHeaders(), body: await file.text() })
    : await api(projectUrl("/labels/import"), { method: "POST", headers, body: form });
  showError("");
  $("counts").prepend(element("p", { className: "small", text: t("labelling.imported", { count: answer.imported }) }));
  await loadQueue();
}));
$("train").addEventListener("click", guard(async () => {
  showJob(await post("/api/v1/jobs", { project: project.name, auto_promote: $("auto-promote").checked }));
}));
bindLogin(showError, () => start().catch((error) => showError(error.message)));

start().catch((error) => showError(error.message));
