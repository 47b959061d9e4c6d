// Analyze page: send the chosen image to /api/v1/predict and show label, probabilities, tags, timings.
import { t } from "./i18n.js";

const form = document.getElementById("analyze-form");
const input = document.getElementById("image-input");
const preview = document.getElementById("preview");
const button = document.getElementById("analyze-button");
const result = document.getElementById("result");
const errorBox = document.getElementById("error");

function labelText(label) {
  return t(`label.${label}`) === `label.${label}` ? label : t(`label.${label}`);
}

function bar(name, probability) {
  const row = document.createElement("div");
  row.className = "mb-2";
  const caption = document.createElement("div");
  caption.textContent = `${labelText(name)} — ${(probability * 100).toFixed(1)} %`;
  const outer = document.createElement("div");
  outer.className = "progress probability-bar";
  outer.setAttribute("role", "progressbar");
  outer.setAttribute("aria-label", labelText(name));
  outer.setAttribute("aria-valuenow", Math.round(probability * 100));
  outer.setAttribute("aria-valuemin", "0");
  outer.setAttribute("aria-valuemax", "100");
  const inner = document.createElement("div");
  inner.className = "progress-bar";
  inner.style.width = `${probability * 100}%`;
  outer.append(inner);
  row.append(caption, outer);
  return row;
}

function show(answer) {
  const r = answer.results[0];
  const badge = document.getElementById("result-label");
  badge.textContent = `${labelText(r.label)} (${t("analyze.confidence")} ${(r.confidence * 100).toFixed(1)} %)`;
  badge.className = `badge ${r.unknown ? "text-bg-warning" : "text-bg-success"}`;
  document.getElementById("result-probabilities").replaceChildren(
    ...Object.entries(r.probabilities).map(([name, p]) => bar(name, p)));
  document.getElementById("result-tags").replaceChildren(...(r.tags || []).map((tag) => {
    const item = document.createElement("li");
    item.textContent = `${tag.label} — ${(tag.probability * 100).toFixed(1)} %`;
    return item;
  }));
  document.getElementById("result-model").textContent = `${answer.model.name} ${answer.model.version}`;
  document.getElementById("result-timings").textContent = Object.entries(answer.timings)
    .map(([k, v]) => `${k.replace("_ms", "")} ${v}`).join(" · ");
  result.classList.remove("d-none");
}

input.addEventListener("change", () => {
  const file = input.files[0];
  if (file) {
    preview.src = URL.createObjectURL(file);
    preview.classList.remove("d-none");
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!input.files.length) return;
  const body = new FormData();
  body.append("image", input.files[0]);
  button.disabled = true;
  button.textContent = t("analyze.working");
  errorBox.classList.add("d-none");
  try {
    const response = await fetch(`/api/v1/predict?lang=${document.documentElement.lang}`, { method: "POST", body });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error.message);
    show(answer);
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.classList.remove("d-none");
  } finally {
    button.disabled = false;
    button.textContent = t("analyze.submit");
  }
});
