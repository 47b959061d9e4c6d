// Learn pages (templates/learn_index.html, lesson.html): progress kept in this browser (localStorage), and on a
// lesson page the demo modules of web/static/js/lessons/ mounted as docs/lessons.md says (mount / exercise,
// ctx = { lang, t, quick, api, shared, complete }, data-state loading → done/ready, or error + a message).
import { t } from "./i18n.js";
import { api, element, pageLanguage } from "./render.js";

const STORE = "riim.learn.done";

/** The slugs of the lessons marked done in this browser. */
export function doneLessons() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "[]");
    return new Set(Array.isArray(saved) ? saved.filter((slug) => typeof slug === "string") : []);
  } catch {
    return new Set();  // storage disabled or a damaged value: nothing is done yet
  }
}

function saveDone(done) {
  try {
    localStorage.setItem(STORE, JSON.stringify([...done].sort()));
  } catch { /* storage disabled (private mode): progress lasts this page only */ }
}

export function setDone(slug, isDone) {
  const done = doneLessons();
  if (isDone) done.add(slug); else done.delete(slug);
  saveDone(done);
}

// --- index: done badges, progress bar, the suggested next lesson ----------------------------------------
function showIndex() {
  const done = doneLessons();
  const cards = [...document.querySelectorAll("[data-lesson]")];
  const finished = cards.filter((card) => done.has(card.dataset.lesson)).length;
  const ready = (card) => (card.dataset.prerequisites || "").split(" ").filter(Boolean).every((name) => done.has(name));
  const next = cards.find((card) => !done.has(card.dataset.lesson) && ready(card)) || cards.find((card) => !done.has(card.dataset.lesson));
  cards.forEach((card) => {
    card.querySelector(".lesson-done-badge").classList.toggle("d-none", !done.has(card.dataset.lesson));
    card.querySelector(".lesson-next-badge").classList.toggle("d-none", card !== next);
    card.classList.toggle("lesson-card-done", done.has(card.dataset.lesson));
  });
  const total = cards.length;
  document.getElementById("learn-progress-text").textContent = t("learn.progress", { done: finished, total });
  document.getElementById("learn-progress-bar").style.width = `${total ? (100 * finished) / total : 0}%`;
  document.querySelector("#learn-progress [role=progressbar]").setAttribute("aria-valuenow", String(finished));
}

// --- lesson page ---------------------------------------------------------------------------------------
function fail(root, error) {
  root.dataset.state = "error";
  root.replaceChildren(element("div", { className: "alert alert-danger", attrs: { role: "alert" },
    text: t("learn.demo_error", { message: error?.message || String(error) }) }));
  console.warn(`lesson module ${root.dataset.demo || root.dataset.exercise}:`, error);
}

/** Import web/static/js/lessons/<name>.js and call ``exported(root, ctx)`` with the root marked loading. */
async function run(root, name, exported, ctx) {
  root.dataset.state = "loading";
  root.replaceChildren(element("p", { className: "small text-body-secondary lesson-loading", text: t("learn.loading") }));
  try {
    const module = await import(`./lessons/${name}.js`);
    if (typeof module[exported] !== "function") throw new Error(`${name}.js exports no ${exported}()`);
    root.replaceChildren();
    await module[exported](root, ctx);
    if (exported === "exercise" && root.dataset.state === "loading") root.dataset.state = "ready";
  } catch (error) {
    fail(root, error);
  }
}

function showDone(button, isDone) {
  button.setAttribute("aria-pressed", String(isDone));
  button.textContent = isDone ? button.dataset.labelOn : button.dataset.labelOff;
  button.classList.toggle("btn-success", !isDone);
  button.classList.toggle("btn-outline-success", isDone);
}

async function showLesson(article) {
  const slug = article.dataset.slug;
  const button = document.getElementById("lesson-done");
  showDone(button, doneLessons().has(slug));
  button.addEventListener("click", () => {
    const isDone = button.getAttribute("aria-pressed") !== "true";
    setDone(slug, isDone);
    showDone(button, isDone);
  });
  const pending = (article.dataset.prerequisites || "").split(" ").filter((name) => name && !doneLessons().has(name));
  document.getElementById("prerequisites-pending")?.classList.toggle("d-none", pending.length === 0);

  const ctx = {
    lang: pageLanguage,
    t,
    quick: new URLSearchParams(window.location.search).get("quick") === "1",
    api,
    shared: {},
    /** An exercise answered right: the lesson counts as done in this browser. */
    complete() {
      setDone(slug, true);
      showDone(button, true);
    },
  };
  // Demos in order, then the exercise; each starts when the previous mount() has resolved.
  for (const root of article.querySelectorAll("[data-demo]")) await run(root, root.dataset.demo, "mount", ctx);
  const exercise = article.querySelector("[data-exercise]");
  if (exercise) await run(exercise, exercise.dataset.exercise, "exercise", ctx);
}

if (document.getElementById("learn-path")) {
  showIndex();
  document.getElementById("learn-reset").addEventListener("click", () => {
    saveDone(new Set());
    showIndex();
  });
}
const article = document.getElementById("lesson");
if (article) showLesson(article);
