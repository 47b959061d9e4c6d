// Lesson ci-cd: this project's own pipeline read from its files (GET /api/v1/learn/ci: .github/workflows/ci.yml
// and .ci/run) and its tests (GET /api/v1/learn/tests: tests/ read at request time), drawn as jobs and steps;
// a switch shows what one failing test does to the pipeline and the merge. The exercise: find the test that
// guards a behaviour, by searching the real list as `pytest -k` would.
import { element, formatNumber } from "../render.js";

const Chart = globalThis.Chart;
// Behaviours of this app and the test that guards each (file::function); a question is only asked when its test
// is in the live list, so the answer is always a real test of this repository.
export const BEHAVIOURS = [
  ["csrf", "tests/test_security.py::test_csrf_is_required_from_a_session_but_predict_stays_open_to_curl"],
  ["layers", "tests/test_layers.py::test_layers_import_only_downwards"],
  ["coffee", "tests/test_browser.py::test_coffee_is_unknown_in_both"],
  ["pixels", "tests/test_browser.py::test_browser_preprocessing_gives_pillows_pixels"],
  ["html", "tests/test_learn.py::test_raw_html_in_markdown_is_escaped"],
  ["phone", "tests/test_pages_layout.py::test_every_page_fits_and_shows_no_keys"],
];

/** Every test as "file::function" with its first docstring line. */
export function testIds(modules) {
  return modules.flatMap((module) => module.tests.map((test) => ({ id: `${module.file}::${test.name}`, doc: test.doc || module.doc })));
}

/** What happens to each job when the tests pass or fail: a job runs only if every job it needs succeeded. */
export function outcome(jobs, testsPass, onMain) {
  const result = {};
  jobs.forEach((job) => {
    const blocked = job.needs.some((name) => result[name] !== "success");
    const skippedByCondition = job.if && !onMain;
    if (blocked || skippedByCondition) result[job.id] = "skipped";
    else result[job.id] = job.id === "test" && !testsPass ? "failure" : "success";
  });
  return result;
}

export async function mount(root, ctx) {
  const { t } = ctx;
  const [pipeline, tests] = await Promise.all([ctx.api("/api/v1/learn/ci"), ctx.api("/api/v1/learn/tests")]);
  ctx.shared.tests = tests.modules;
  const ids = testIds(tests.modules);
  const fail = element("input", { className: "form-check-input", attrs: { type: "checkbox", id: "ci-fail" } });
  const main = element("input", { className: "form-check-input", attrs: { type: "checkbox", id: "ci-main" } });
  main.checked = true;
  const switches = element("div", { className: "d-flex flex-wrap gap-3 mb-2" },
    element("div", { className: "form-check form-switch" }, fail, element("label", { className: "form-check-label", text: t("lesson.ci-cd.simulate_fail"), attrs: { for: "ci-fail" } })),
    element("div", { className: "form-check form-switch" }, main, element("label", { className: "form-check-label", text: t("lesson.ci-cd.on_main"), attrs: { for: "ci-main" } })));
  const flow = element("div", { className: "ci-flow" });
  const merge = element("p", { className: "ci-merge mb-2", attrs: { "aria-live": "polite" } });
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": t("lesson.ci-cd.chart_label") } });
  root.append(
    element("p", { className: "mb-2", text: t("lesson.ci-cd.summary", { file: pipeline.file, script: pipeline.script.file,
      commands: pipeline.script.commands.at(-1), triggers: pipeline.triggers.join(", "), modules: tests.modules.length, tests: formatNumber(ids.length) }) }),
    switches, flow, merge,
    element("h3", { className: "h6 mt-3", text: t("lesson.ci-cd.chart_heading") }),
    element("div", { className: "chart-canvas chart-tall" }, canvas));

  function draw() {
    const states = outcome(pipeline.jobs, !fail.checked, main.checked);
    flow.replaceChildren(element("div", { className: "ci-job ci-trigger" }, element("strong", { text: t("lesson.ci-cd.trigger") }),
      element("span", { className: "small d-block", text: pipeline.triggers.join(" · ") })),
    ...pipeline.jobs.flatMap((job) => [element("div", { className: "ci-arrow", text: "→", attrs: { "aria-hidden": "true" } }),
      element("div", { className: `ci-job ci-${states[job.id]}`, attrs: { "data-job": job.id, "data-outcome": states[job.id] } },
        element("strong", { text: `${job.id} — ${t(`lesson.ci-cd.outcome_${states[job.id]}`)}` }),
        element("span", { className: "small d-block text-body-secondary", text: [job.needs.length ? t("lesson.ci-cd.needs", { jobs: job.needs.join(", ") }) : "",
          job.if ? t("lesson.ci-cd.condition", { condition: job.if }) : ""].filter(Boolean).join(" · ") }),
        element("ol", { className: "small mb-0 ps-3" }, ...job.steps.map((step) => element("li", { text: step }))))]));
    merge.className = `ci-merge mb-2 ${fail.checked ? "text-danger" : "text-success"}`;
    merge.textContent = t(fail.checked ? "lesson.ci-cd.merge_blocked" : "lesson.ci-cd.merge_allowed");
    return states;
  }
  fail.addEventListener("change", draw);
  main.addEventListener("change", draw);
  const states = draw();

  const counts = tests.modules.map((module) => [module.file.replace("tests/", ""), module.tests.length]).sort((a, b) => b[1] - a[1]).slice(0, 15);
  new Chart(canvas, {
    type: "bar",
    data: { labels: counts.map(([file]) => file), datasets: [{ label: t("lesson.ci-cd.tests_per_file"), data: counts.map(([, n]) => n), backgroundColor: "#6f42c1" }] },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, title: { display: true, text: t("lesson.ci-cd.tests_per_file") } } } },
  });
  root.dataset.result = JSON.stringify({ test_modules: tests.modules.length, test_functions: ids.length, jobs: pipeline.jobs.length,
    deploy_runs_when_green: Number(Object.values(states).every((state) => state === "success")) });
  root.dataset.expect = JSON.stringify({ test_modules: [10, 500], test_functions: [50, 10000], jobs: [1, 20], deploy_runs_when_green: [1, 1] });
  root.dataset.state = "done";
}

/** Find the test that guards a behaviour: search the live list of tests by words, pick one, get it checked. */
export async function exercise(root, ctx) {
  const { t } = ctx;
  const modules = ctx.shared.tests || (await ctx.api("/api/v1/learn/tests")).modules;
  const ids = testIds(modules);
  const known = new Set(ids.map((test) => test.id));
  const questions = BEHAVIOURS.filter(([, id]) => known.has(id));
  if (!questions.length) throw new Error(t("lesson.ci-cd.no_tests"));
  const prompt = element("p", { className: "mb-2 fw-semibold" });
  const search = element("input", { className: "form-control form-control-sm ci-search", attrs: { type: "search", id: "ci-search",
    placeholder: t("lesson.ci-cd.search_placeholder"), autocomplete: "off" } });
  const matches = element("div", { className: "ci-matches" });
  const verdict = element("p", { className: "mt-2 mb-1", attrs: { "aria-live": "polite" } });
  const next = element("button", { className: "btn btn-outline-secondary btn-sm", text: t("lesson.ci-cd.another"), attrs: { type: "button" } });
  root.append(prompt, element("label", { className: "form-label small", text: t("lesson.ci-cd.search"), attrs: { for: "ci-search" } }), search, matches, verdict, next);
  let index = 0;
  let right = 0;

  function ask() {
    const [key] = questions[index % questions.length];
    prompt.textContent = t(`lesson.ci-cd.behaviour_${key}`);
    search.value = "";
    verdict.textContent = "";
    show();
  }

  function show() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const found = words.length ? ids.filter((test) => words.every((word) => `${test.id} ${test.doc}`.toLowerCase().includes(word))).slice(0, 8) : [];
    matches.replaceChildren(...(words.length && !found.length ? [element("p", { className: "small text-body-secondary mb-0", text: t("lesson.ci-cd.nothing") })] : []),
      ...found.map((test) => {
        const button = element("button", { className: "btn btn-outline-primary btn-sm text-start ci-match", attrs: { type: "button", "data-test": test.id } },
          element("code", { text: test.id }), element("span", { className: "d-block small text-body-secondary", text: test.doc }));
        button.addEventListener("click", () => check(test.id));
        return button;
      }));
  }

  function check(id) {
    const [, answer] = questions[index % questions.length];
    const ok = id === answer;
    right += ok;
    verdict.className = `mt-2 mb-1 ${ok ? "text-success" : "text-danger"}`;
    verdict.textContent = `${t(ok ? "lesson.ci-cd.right" : "lesson.ci-cd.wrong", { answer })} ${t("lesson.ci-cd.run_it", { answer })}`;
    if (right >= 3) ctx.complete();
  }

  search.addEventListener("input", show);
  next.addEventListener("click", () => { index += 1; ask(); });
  ask();
  root.dataset.result = JSON.stringify({ questions: questions.length });
  root.dataset.expect = JSON.stringify({ questions: [3, BEHAVIOURS.length] });
  root.dataset.state = "ready";
}
