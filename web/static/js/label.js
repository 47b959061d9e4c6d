// Labelling page: the uncertainty-ordered queue of stored uploads, labelling with keyboard shortcuts,
// k-means groups for bulk labelling, CSV/JSON export/import, and training jobs with live progress and
// the held-out before/after table (admin API; the CSRF token comes from the meta tag).
import { t } from "./i18n.js";
import { api, bindLogin, element, jsonHeaders, percent, table } from "./render.js";

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
  if ($("predicted").value) query.set("predicted", $("predicted").value);
  if ($("unknown").checked) query.set("unknown", "1");
  if ($("since").value) query.set("since", $("since").value);
  if ($("until").value) query.set("until", `${$("until").value}T23:59:59`);
  return query;
}

function showCounts(counts) {
  const rows = Object.entries(counts.classes).map(([label, c]) => [label, String(c.train), String(c.holdout)]);
  $("counts").replaceChildren(table([[t("labelling.count_class"), t("labelling.count_train"), t("labelling.count_holdout")], ...rows]));
}

async function loadQueue() {
  const answer = await api(`${projectUrl("/queue")}?${queueQuery()}`);
  project = answer.project;
  items = answer.items;
  index = 0;
  $("total").textContent = answer.total;
  showCounts(answer.counts);
  $("export-csv").href = projectUrl("/labels?format=csv");
  $("export-json").href = projectUrl("/labels?format=json");
  $("queue").replaceChildren(...items.map((item, i) => {
    const thumb = element("img", { className: "img-thumbnail", attrs: { src: `/api/v1/uploads/${item.sha256}`, alt: item.filename || item.sha256.slice(0, 8), width: "56", height: "56", "data-index": i } });
    thumb.addEventListener("click", () => show(i));
    return thumb;
  }));
  await show(0);
  document.body.dataset.state = "ready";
}

async function show(i) {
  index = Math.max(0, Math.min(i, items.length - 1));
  const item = items[index];
  $("empty").classList.toggle("d-none", Boolean(item));
  $("current").classList.toggle("d-none", !item);
  if (!item) return;
  $("current-image").src = `/api/v1/uploads/${item.sha256}`;
  $("current-image").style.maxHeight = "240px";
  $("current-image").dataset.sha256 = item.sha256;
  const p = item.prediction;
  $("current-prediction").textContent = p ? t("labelling.prediction", { model: p.model, version: p.version, label: p.label,
    confidence: (p.confidence * 100).toFixed(1), uncertainty: percent(item.uncertainty) }) : t("labelling.no_prediction");
  $("class-buttons").replaceChildren(...project.classes.map((name, k) => {
    const button = element("button", { className: "btn btn-sm btn-outline-primary", text: k < 9 ? `${k + 1} · ${name}` : name, attrs: { type: "button", "data-class": name } });
    button.addEventListener("click", () => label({ label: name }));
    return button;
  }));
  const history = await api(projectUrl(`/labels/${item.sha256}/history`));
  $("history").replaceChildren(...history.history.map((row) => element("li", { text: t("labelling.history_row", {
    created: row.created.replace("T", " ").slice(0, 19), user: row.user, what: row.label || row.status }) })));
}

async function label(decision) {
  const item = items[index];
  if (!item) return;
  try {
    await post(projectUrl("/labels"), { sha256: item.sha256, status: decision.status || "labelled", label: decision.label });
    await loadQueue();
  } catch (error) {
    showError(error.message);
  }
}

async function findClusters() {
  const answer = await post(`${projectUrl("/clusters")}?k=6`, {});
  $("clusters").replaceChildren(...answer.clusters.map((group, k) => {
    const select = element("select", { className: "form-select form-select-sm", attrs: { "aria-label": t("labelling.label_cluster") } },
      ...project.classes.map((name) => element("option", { text: name, attrs: { value: name } })));
    const apply = element("button", { className: "btn btn-sm btn-outline-primary", text: t("labelling.add"), attrs: { type: "button" } });
    apply.addEventListener("click", async () => {
      await post(projectUrl("/labels"), { items: group.members.map((sha256) => ({ sha256, label: select.value })) });
      await loadQueue();
      await findClusters();
    });
    const thumbs = group.members.slice(0, 12).map((sha) => element("img", { className: "img-thumbnail", attrs: { src: `/api/v1/uploads/${sha}`, alt: sha.slice(0, 8), width: "40", height: "40" } }));
    return element("div", { className: "card card-body mb-2" }, element("div", { className: "small", text: t("labelling.cluster", { index: k + 1, count: group.members.length }) }),
      element("div", {}, ...thumbs), element("div", { className: "d-flex gap-2 mt-1" }, select, apply));
  }));
}

function beforeAfter(result) {
  if (!result) return "";
  const { parent, delta } = result;
  const fmt = (value) => (value === undefined || value === null ? "—" : value.toFixed(3));
  const rows = [["accuracy", "macro_f1"].map((m) => [m, parent ? fmt(parent[m]) : "—", fmt(result.new[m]), delta ? fmt(delta[m]) : "—"]),
    Object.keys(result.new.per_class).map((c) => [`F1 ${c}`, parent ? fmt(parent.per_class[c]?.f1) : "—", fmt(result.new.per_class[c].f1), delta ? fmt(delta.per_class[c].f1) : "—"])].flat();
  return element("div", {}, element("h3", { className: "h6", text: t("labelling.before_after", { images: result.images.length }) }),
    table([[t("labelling.metric"), t("labelling.parent", { version: parent?.version || "—" }), t("labelling.new", { version: result.new.version }), t("labelling.delta")], ...rows]));
}

function showJob(job) {
  const progress = job.progress || {};
  const line = t("labelling.job_progress", { stage: progress.stage || job.stage || "", epoch: progress.epoch ?? "—", epochs: progress.epochs ?? "—",
    loss: progress.loss ?? "—", accuracy: progress.accuracy ?? "—", eta: progress.eta_seconds ?? "—" });
  const parts = [element("div", { className: "fw-semibold", attrs: { "data-state": job.state, id: "job-state" }, text: t("labelling.job", { id: job.id, state: job.state }) }),
    element("div", { className: "small", text: job.error || line })];
  if (["queued", "running"].includes(job.state)) {
    const cancel = element("button", { className: "btn btn-sm btn-outline-danger", text: t("labelling.cancel"), attrs: { type: "button" } });
    cancel.addEventListener("click", () => post(`/api/v1/jobs/${job.id}/cancel`, {}).then(showJob).catch((e) => showError(e.message)));
    parts.push(cancel);
  }
  parts.push(beforeAfter(job.result));
  if (job.state === "succeeded" && !job.promoted) {
    const promote = element("button", { className: "btn btn-sm btn-success", text: t("labelling.promote", { version: job.version }), attrs: { type: "button" } });
    promote.addEventListener("click", () => post(`/api/v1/models/${encodeURIComponent(job.project)}/promote`, { version: job.version })
      .then(() => showJob({ ...job, promoted: true })).catch((e) => showError(e.message)));
    parts.push(promote);
  } else if (job.state === "succeeded") {
    const rollback = element("button", { className: "btn btn-sm btn-outline-danger", text: t("labelling.rollback"), attrs: { type: "button" } });
    rollback.addEventListener("click", () => post(`/api/v1/models/${encodeURIComponent(job.project)}/rollback`, {}).catch((e) => showError(e.message)));
    parts.push(element("span", { className: "small me-2", text: t("labelling.promoted", { version: job.version }) }), rollback);
  }
  parts.push(element("a", { className: "small d-block", text: t("labelling.log"), attrs: { href: `/api/v1/jobs/${job.id}/log`, target: "_blank" } }));
  $("job").replaceChildren(...parts);
  clearTimeout(polling);
  if (["queued", "running"].includes(job.state)) {
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
  $("login-form").classList.toggle("d-none", Boolean(me.user?.is_admin));
  $("workspace").classList.toggle("d-none", !me.user?.is_admin);
  if (me.user?.is_admin) await loadProjects();
}

const guard = (action) => (...args) => Promise.resolve(action(...args)).then(() => showError("")).catch((error) => showError(error.message));

document.addEventListener("keydown", (event) => {
  if (!project || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName) || event.ctrlKey || event.metaKey || event.altKey) return;
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
$("new-class-form").addEventListener("submit", (event) => { event.preventDefault(); label({ label: $("new-class").value.trim() }); $("new-class").value = ""; });
$("skip").addEventListener("click", () => label({ status: "skipped" }));
$("bad").addEventListener("click", () => label({ status: "bad" }));
$("filters").addEventListener("change", guard(loadQueue));
$("project").addEventListener("change", guard(() => loadProjects($("project").value)));
$("find-clusters").addEventListener("click", guard(findClusters));
$("project-form").addEventListener("submit", guard(async (event) => {
  event.preventDefault();
  const classes = $("project-classes").value.split(",").map((c) => c.trim()).filter(Boolean);
  const created = await post(LABELLING, { name: $("project-name").value.trim(), classes });
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
