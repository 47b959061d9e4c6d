// Recurrent networks lesson: an LSTM trained in the browser (TF.js) on the real weekly Mauna Loa CO2 series
// (GET /api/v1/dl/series/co2, the file statsmodels bundles), with the project's window encoding
// (models/series.py: scaled, minus the window's last value; horizon = round(0.3 × window)), compared on held-out
// windows with the naive (last value) and seasonal-naive (one year ago) forecasts; then the server's trained model
// (ONNX Runtime, POST /api/v1/dl/predict-price) when there is one, and a link to the Series page.
import { element, formatNumber } from "../render.js";
import { lineChart, tfReady } from "../lesson_data.js";

const FULL = { weeks: 800, window: 26, units: 16, epochs: 12 };
const QUICK = { weeks: 260, window: 20, units: 8, epochs: 3 };
const SEASON = 52;

/** round(0.3 × window), halves up — the same rule as models/series.py horizon_for. */
export const horizonFor = (window) => Math.max(1, Math.floor(0.3 * window + 0.5));

/** Missing weeks (null) filled by linear interpolation between their neighbours, as the training loader does. */
function interpolate(values) {
  const filled = [...values];
  for (let i = 0; i < filled.length; i += 1) {
    if (filled[i] !== null) continue;
    let j = i;
    while (j < filled.length && filled[j] === null) j += 1;
    const before = i > 0 ? filled[i - 1] : filled[j], after = j < filled.length ? filled[j] : before;
    for (let k = i; k < j; k += 1) filled[k] = before + ((after - before) * (k - i + 1)) / (j - i + 1);
    i = j;
  }
  return filled;
}

/** Windows (past, future, start index) of the series whose forecast falls in [from, to). */
function windows(values, window, horizon, from, to) {
  const rows = [];
  for (let start = Math.max(window, from); start + horizon <= to; start += 1) {
    rows.push({ start, past: values.slice(start - window, start), future: values.slice(start, start + horizon) });
  }
  return rows;
}

/** The project's encoding: scaled values minus the window's last one (input) and the future the same way (target). */
function encode(rows, scale) {
  return {
    x: rows.map((row) => row.past.map((v) => [(v - row.past[row.past.length - 1]) / scale])),
    y: rows.map((row) => row.future.map((v) => (v - row.past[row.past.length - 1]) / scale)),
  };
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

export async function mount(root, ctx) {
  const sizes = ctx.quick ? QUICK : FULL;
  const status = element("p", { className: "small", text: ctx.t("lesson.recurrent-networks.loading"), attrs: { role: "status" } });
  root.append(status);
  try {
    const tf = await tfReady();
    const series = await ctx.api("/api/v1/dl/series/co2");
    const all = interpolate(series.values);
    const values = all.slice(-sizes.weeks);
    const dates = series.dates.slice(-sizes.weeks);
    const window = sizes.window, horizon = horizonFor(window);
    const trainEnd = Math.round(values.length * 0.7), validationEnd = Math.round(values.length * 0.85);
    const training = values.slice(0, trainEnd);
    const trainMean = mean(training);
    const scale = Math.sqrt(mean(training.map((v) => (v - trainMean) ** 2)));  // fitted on the training part only
    root.append(element("p", { text: ctx.t("lesson.recurrent-networks.data", { weeks: formatNumber(values.length), start: dates[0],
      end: dates[dates.length - 1], window, horizon }) }));

    const train = encode(windows(values, window, horizon, 0, trainEnd), scale);
    const validation = encode(windows(values, window, horizon, trainEnd, validationEnd), scale);
    const testRows = windows(values, window, horizon, validationEnd, values.length).filter((row) => row.start >= SEASON);
    tf.util.seedrandom?.(0);
    const model = tf.sequential();
    model.add(tf.layers.lstm({ units: sizes.units, inputShape: [window, 1], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      recurrentInitializer: tf.initializers.orthogonal({ seed: 2 }) }));
    model.add(tf.layers.dense({ units: horizon, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
    model.compile({ optimizer: tf.train.adam(0.01), loss: "meanSquaredError" });
    const lossBox = element("figure", { className: "mb-3" }, element("figcaption", { className: "small fw-semibold", text: ctx.t("lesson.recurrent-networks.loss_chart") }));
    root.append(lossBox);
    const history = { loss: [], val_loss: [] };
    const chart = lineChart(lossBox, { labels: [], yMax: undefined, xLabel: ctx.t("lesson.recurrent-networks.epoch"), yLabel: "MSE", datasets: [
      { label: ctx.t("lesson.recurrent-networks.loss"), data: history.loss, colour: "#0d6efd" },
      { label: ctx.t("lesson.recurrent-networks.val_loss"), data: history.val_loss, colour: "#fd7e14", dashed: true }] });
    chart.options.scales.y.min = undefined;
    const [xs, ys, vx, vy] = [tf.tensor3d(train.x), tf.tensor2d(train.y), tf.tensor3d(validation.x), tf.tensor2d(validation.y)];
    await model.fit(xs, ys, { epochs: sizes.epochs, batchSize: 32, shuffle: true, validationData: [vx, vy], verbose: 0, yieldEvery: "auto",
      callbacks: { onEpochEnd: (epoch, logs) => {
        history.loss.push(logs.loss);
        history.val_loss.push(logs.val_loss);
        chart.data.labels.push(epoch + 1);
        chart.update();
        status.textContent = ctx.t("lesson.recurrent-networks.training", { units: sizes.units, epoch: epoch + 1, epochs: sizes.epochs });
      } } });
    tf.dispose([xs, ys, vx, vy]);

    const test = encode(testRows, scale);
    const outputs = tf.tidy(() => model.predict(tf.tensor3d(test.x)).arraySync());
    model.dispose();
    const offset = values.length - all.length;  // index of `values` inside the whole series (negative)
    const forecasts = testRows.map((row, i) => ({
      model: outputs[i].map((change) => row.past[row.past.length - 1] + change * scale),
      naive: row.future.map(() => row.past[row.past.length - 1]),
      seasonal: row.future.map((_, k) => all[row.start - offset + k - SEASON * Math.ceil((k + 1) / SEASON)]),
    }));
    const mae = (key) => mean(testRows.flatMap((row, i) => row.future.map((v, k) => Math.abs(forecasts[i][key][k] - v))));
    const errors = { model: mae("model"), naive: mae("naive"), seasonal: mae("seasonal") };
    const ppm = (value) => formatNumber(value, { maximumFractionDigits: 2 });
    status.textContent = ctx.t("lesson.recurrent-networks.result", { n: testRows.length, model: ppm(errors.model), naive: ppm(errors.naive), seasonal: ppm(errors.seasonal) });
    root.append(element("p", { className: "fw-semibold", text: ctx.t(errors.model < Math.min(errors.naive, errors.seasonal)
      ? "lesson.recurrent-networks.wins" : "lesson.recurrent-networks.loses") }));
    ctx.shared.recurrent = { errors, horizon, window };

    const last = testRows.length - 1, row = testRows[last];
    const windowBox = element("figure", { className: "mb-3" }, element("figcaption", { className: "small fw-semibold", text: ctx.t("lesson.recurrent-networks.window_chart") }));
    root.append(windowBox);
    const pad = (data) => [...Array(window - 1).fill(null), row.past[window - 1], ...data];
    const windowChart = lineChart(windowBox, { labels: [...row.past, ...row.future].map((_, i) => i - window + 1), yMax: undefined,
      xLabel: ctx.t("lesson.recurrent-networks.week"), yLabel: "CO₂ (ppm)", datasets: [
        { label: ctx.t("lesson.recurrent-networks.seen"), data: [...row.past, ...row.future.map(() => null)], colour: "#198754" },
        { label: ctx.t("lesson.recurrent-networks.actual"), data: pad(row.future), colour: "#212529" },
        { label: ctx.t("lesson.recurrent-networks.lstm"), data: pad(forecasts[last].model), colour: "#0d6efd" },
        { label: ctx.t("lesson.recurrent-networks.naive"), data: pad(forecasts[last].naive), colour: "#6c757d", dashed: true },
        { label: ctx.t("lesson.recurrent-networks.seasonal"), data: pad(forecasts[last].seasonal), colour: "#fd7e14", dashed: true }] });
    windowChart.options.scales.y.min = undefined;
    windowChart.options.scales.y.max = undefined;
    windowChart.update();

    await serverModel(root, ctx);
    root.dataset.state = "done";
  } catch (error) {
    status.textContent = error.message;
    status.className = "alert alert-danger";
    root.dataset.state = "error";
  }
}

/** The server's trained forecaster, if any: its next values for the last window of its own series. */
async function serverModel(root, ctx) {
  const info = await ctx.api("/api/v1/dl/model-info");
  const model = info.models.find((entry) => entry.current && entry.task === "time-series-forecasting");
  const link = element("a", { className: "btn btn-outline-primary btn-sm", text: ctx.t("lesson.recurrent-networks.open_series"), attrs: { href: "/series" } });
  if (!model) {
    root.append(element("p", { className: "small", text: ctx.t("lesson.recurrent-networks.no_server") }), link);
    return;
  }
  const sequence = Object.values(model.series.last_window)[0];
  const answer = await ctx.api(`/api/v1/dl/predict-price?model=${encodeURIComponent(model.name)}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sequence }) });
  root.append(element("p", { className: "small", text: ctx.t("lesson.recurrent-networks.server", { model: model.name, kind: model.series.model.toUpperCase(),
    window: answer.window, ms: formatNumber(answer.inference_ms, { maximumFractionDigits: 2 }),
    values: answer.predictions.map((v) => formatNumber(v, { maximumFractionDigits: 2 })).join(" · ") }) }), link);
}

export async function exercise(root, ctx) {
  const window = 40, horizon = horizonFor(window);
  const input = element("input", { className: "form-control form-control-sm", attrs: { id: "rnn-horizon", type: "number", min: "1", max: "40" } });
  const check = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.recurrent-networks.ex_check"), attrs: { type: "button" } });
  const first = element("div", { className: "mt-2", attrs: { role: "status" } });
  const options = ["a", "b", "c"].map((key) => element("button", { className: "btn btn-outline-secondary btn-sm me-2 mb-2", text: ctx.t(`lesson.recurrent-networks.ex_option_${key}`),
    attrs: { type: "button", "data-option": key } }));
  const second = element("div", { className: "mt-2", attrs: { role: "status" } });
  const verdict = (right, text) => element("div", { className: `alert ${right ? "alert-success" : "alert-warning"} mb-0` },
    element("strong", { text: ctx.t(right ? "lesson.recurrent-networks.ex_right" : "lesson.recurrent-networks.ex_wrong") }), " ", text);
  check.addEventListener("click", () => {
    const right = Number(input.value) === horizon;
    first.replaceChildren(verdict(right, ctx.t("lesson.recurrent-networks.ex_explain", { window, horizon,
      exact: formatNumber(0.3 * window, { maximumFractionDigits: 1 }) })));
  });
  options.forEach((button) => button.addEventListener("click", () => {
    const right = button.dataset.option === "b";
    second.replaceChildren(verdict(right, ctx.t("lesson.recurrent-networks.ex_explain2")));
    if (right) ctx.complete?.();
  }));
  root.append(element("p", { text: ctx.t("lesson.recurrent-networks.ex_question", { window }) }),
    element("div", { className: "d-flex gap-2 align-items-end" },
      element("div", {}, element("label", { className: "form-label small", text: ctx.t("lesson.recurrent-networks.ex_answer"), attrs: { for: "rnn-horizon" } }), input), check),
    first, element("p", { className: "mt-3", text: ctx.t("lesson.recurrent-networks.ex_question2") }), element("div", {}, ...options), second);
  root.dataset.state = "ready";
}
