// Lesson cloud-vs-edge: the same photo classified by the server (POST /api/v1/predict, ONNX Runtime) and by
// this browser (the served model's TF.js export, edge.js), several times each: answers, latency, bytes sent
// and requests made, side by side. The exercise asks three questions whose answers these measurements give.
import { classify, loadEdgeModel } from "../edge.js";
import { element, fileButton, formatNumber, labelText, ms, percent, table, tOr } from "../render.js";

const Chart = globalThis.Chart;
const SAMPLE = "skimage/chelsea";
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const kilobytes = (bytes) => `${formatNumber(bytes / 1024, { maximumFractionDigits: 1 })} KB`;

/** Ask the server: the photo travels in the request; the round trip is timed here. */
export async function askServer(model, blob) {
  const body = new FormData();
  body.append("image", blob, "photo");
  const started = performance.now();
  const response = await fetch(`/api/v1/predict?model=${encodeURIComponent(model)}&lang=${document.documentElement.lang}`, { method: "POST", body });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error?.message || response.statusText);
  return { result: answer.results[0], stored: answer.stored, roundTripMs: performance.now() - started, bytesSent: blob.size };
}

/** Ask the browser's copy of the model, counting the network requests the page makes meanwhile. */
export async function askEdge(edge, blob) {
  performance.clearResourceTimings();  // from here on, every request this page makes is listed again
  const result = await classify(edge, blob);
  return { result, totalMs: result.timings.total_ms, requests: performance.getEntriesByType("resource").length };
}

export async function mount(root, ctx) {
  const { t } = ctx;
  const modelName = document.getElementById("main").dataset.model;
  const repeats = ctx.quick ? 3 : 10;
  const samples = (await ctx.api("/api/v1/lessons/samples")).photos;
  const sampleSelect = element("select", { className: "form-select form-select-sm w-auto", attrs: { id: "edge-sample" } },
    ...samples.map((photo) => element("option", { text: photo.name, attrs: { value: photo.url } })));
  sampleSelect.value = samples.find((photo) => photo.name === SAMPLE)?.url || samples[0].url;
  const file = element("input", { attrs: { type: "file", accept: "image/*", id: "edge-file" } });
  const preview = element("img", { className: "lesson-photo", attrs: { alt: t("lesson.cloud-vs-edge.photo_alt") } });
  const status = element("p", { className: "mb-2", attrs: { "aria-live": "polite" } });
  const results = element("div", { className: "table-responsive" });
  const canvas = element("canvas", { attrs: { role: "img", "aria-label": t("lesson.cloud-vs-edge.chart_label") } });
  root.append(
    element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" },
      element("label", { className: "form-label mb-0 small", text: t("lesson.convolution.sample"), attrs: { for: "edge-sample" } }), sampleSelect,
      element("label", { className: "form-label mb-0 small", text: t("lesson.convolution.own"), attrs: { for: "edge-file" } }), fileButton(file, t("common.choose_photo"))),
    element("div", { className: "d-flex flex-wrap gap-3 align-items-start" }, preview, status),
    results,
    element("div", { className: "chart-canvas" }, canvas),
    element("p", { className: "small text-body-secondary mt-1", text: t("lesson.cloud-vs-edge.chart_explain", { repeats }) }));
  const chart = new Chart(canvas, {
    type: "bar", data: { labels: [], datasets: [] },
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "top" } },
      scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } }, x: { title: { display: true, text: t("lesson.cloud-vs-edge.run") } } } },
  });

  status.textContent = t("lesson.cloud-vs-edge.loading_model");
  const edge = await loadEdgeModel(modelName);
  const edgeSource = t(edge.source === "cache" ? "lesson.cloud-vs-edge.from_cache" : "lesson.cloud-vs-edge.from_network",
    { seconds: formatNumber(edge.loadMs / 1000, { maximumFractionDigits: 1 }) });

  let measuring = 0;
  /** Server and browser take turns on the photo ``repeats`` times; the table and chart are redrawn after each
   * pair, and the returned promise resolves with the first pair (the rest keeps measuring). */
  function compare(blob) {
    const mine = ++measuring;
    preview.src = URL.createObjectURL(blob);
    status.textContent = t("lesson.cloud-vs-edge.measuring", { repeats });
    const server = [];
    const local = [];
    let first;
    const firstShown = new Promise((resolve, reject) => { first = { resolve, reject }; });
    (async () => {
      for (let i = 0; i < repeats && mine === measuring; i += 1) {  // one after the other: neither timing includes the other's work
        server.push(await askServer(modelName, blob));
        local.push(await askEdge(edge, blob));
        show(server, local, i + 1 < repeats);
        if (i === 0) first.resolve();
      }
    })().catch((error) => { status.textContent = error.message; first.reject(error); });
    return firstShown;
  }

  function show(server, local, more) {
    const s = server.at(-1);
    const e = local.at(-1).result;
    const serverMs = median(server.map((run) => run.roundTripMs));
    const edgeMs = median(local.map((run) => run.totalMs));
    const requests = local.reduce((sum, run) => sum + run.requests, 0);
    const answer = (result) => (result.unknown ? labelText("unknown") : `${labelText(result.label)} · ${percent(result.confidence)}`);
    results.replaceChildren(table([
      ["", t("lesson.cloud-vs-edge.server"), t("lesson.cloud-vs-edge.edge")],
      [t("lesson.cloud-vs-edge.answer"), answer(s.result), answer(e)],
      [t("lesson.cloud-vs-edge.latency"), ms(serverMs), ms(edgeMs)],
      [t("lesson.cloud-vs-edge.sent"), t("lesson.cloud-vs-edge.sent_server", { size: kilobytes(s.bytesSent), n: server.length }),
        t("lesson.cloud-vs-edge.sent_edge", { requests })],
      [t("lesson.cloud-vs-edge.kept"), t(s.stored ? "lesson.cloud-vs-edge.stored" : "lesson.cloud-vs-edge.not_stored"), t("lesson.cloud-vs-edge.never")],
      [t("lesson.cloud-vs-edge.model"), t("lesson.cloud-vs-edge.model_server"), `TF.js (${edge.backend}) · ${tOr(`edge.format_${edge.format}`, edge.format)} · ${edgeSource}`],
      [t("lesson.cloud-vs-edge.offline"), t("lesson.cloud-vs-edge.no"), t("lesson.cloud-vs-edge.yes")],
    ], "table table-sm align-middle"));
    chart.data.labels = server.map((_, i) => String(i + 1));
    chart.data.datasets = [
      { label: t("lesson.cloud-vs-edge.server"), data: server.map((run) => run.roundTripMs), backgroundColor: "#0d6efd" },
      { label: t("lesson.cloud-vs-edge.edge"), data: local.map((run) => run.totalMs), backgroundColor: "#198754" },
    ];
    chart.update();
    const agree = s.result.label === e.label && s.result.unknown === e.unknown;
    status.textContent = `${t(agree ? "lesson.cloud-vs-edge.agree" : "lesson.cloud-vs-edge.disagree", { faster: t(serverMs < edgeMs
      ? "lesson.cloud-vs-edge.server" : "lesson.cloud-vs-edge.edge"), ratio: formatNumber(Math.max(serverMs, edgeMs) / Math.max(0.1, Math.min(serverMs, edgeMs)), { maximumFractionDigits: 1 }) })}${
      more ? ` ${t("lesson.cloud-vs-edge.still", { done: server.length, repeats })}` : ""}`;
    Object.assign(ctx.shared, { cloud: { serverMs, edgeMs, requests, bytes: s.bytesSent } });
    root.dataset.result = JSON.stringify({ server_ms: serverMs, edge_ms: edgeMs, edge_requests: requests, server_bytes: s.bytesSent, agree: Number(agree) });
    root.dataset.expect = JSON.stringify({ server_ms: [0, 10000], edge_ms: [0, 10000], edge_requests: [0, 0], server_bytes: [1, 50e6] });
  }

  const fromUrl = async (url) => compare(await (await fetch(url)).blob());
  sampleSelect.addEventListener("change", () => fromUrl(sampleSelect.value).catch((error) => { status.textContent = error.message; }));
  file.addEventListener("change", () => { if (file.files[0]) compare(file.files[0]).catch((error) => { status.textContent = error.message; }); });
  await fromUrl(sampleSelect.value);
  root.dataset.state = "done";
}

/** Three questions; the first two are answered by the measurements above. */
export async function exercise(root, ctx) {
  const { t } = ctx;
  const questions = [
    { key: "q_travel", options: ["server", "edge", "both"], answer: () => "server",
      why: () => t("lesson.cloud-vs-edge.why_travel", { size: kilobytes(ctx.shared.cloud.bytes), requests: ctx.shared.cloud.requests }) },
    { key: "q_faster", options: ["server", "edge"], answer: () => (ctx.shared.cloud.serverMs < ctx.shared.cloud.edgeMs ? "server" : "edge"),
      why: () => t("lesson.cloud-vs-edge.why_faster", { server: ms(ctx.shared.cloud.serverMs), edge: ms(ctx.shared.cloud.edgeMs) }) },
    { key: "q_offline", options: ["server", "edge", "both"], answer: () => "edge", why: () => t("lesson.cloud-vs-edge.why_offline") },
  ];
  let right = 0;
  questions.forEach((question) => {
    const verdict = element("p", { className: "mb-2 small", attrs: { "aria-live": "polite" } });
    const buttons = question.options.map((option) => element("button", { className: "btn btn-outline-primary btn-sm",
      text: t(`lesson.cloud-vs-edge.option_${option}`), attrs: { type: "button", "data-answer": option } }));
    buttons.forEach((button) => button.addEventListener("click", () => {
      const ok = button.dataset.answer === question.answer();
      right += ok;
      buttons.forEach((other) => { other.disabled = true; });
      verdict.className = `mb-2 small ${ok ? "text-success" : "text-danger"}`;
      verdict.textContent = `${t(ok ? "lesson.neural-networks.right" : "lesson.neural-networks.wrong")} ${question.why()}`;
      if (right === questions.length) ctx.complete();
    }));
    root.append(element("p", { className: "mb-1", text: t(`lesson.cloud-vs-edge.${question.key}`) }),
      element("div", { className: "d-flex flex-wrap gap-1 mb-1" }, ...buttons), verdict);
  });
  root.dataset.state = "ready";
}
