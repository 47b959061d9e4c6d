"""One self-contained HTML report per time-series run: the vendored Chart.js is inlined (no CDN, opens offline
from disk), with the training curves, forecast vs actual with the baselines, residuals, the metrics table
against naive and seasonal-naive, walk-forward folds, the data report and, for an autoencoder, the anomaly
scores with their threshold."""
from __future__ import annotations

import html
import json
from pathlib import Path

CHARTJS = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor" / "chartjs" / "chart.umd.min.js"
METRICS = ("mae", "rmse", "mape", "smape", "mase", "directional_accuracy")

SCRIPT = """
const runs = JSON.parse(document.getElementById("data").textContent);
const colours = {model: "#0d6efd", naive: "#6c757d", seasonal_naive: "#fd7e14", actual: "#198754"};
function chart(parent, title, labels, datasets, options = {}) {
  const box = document.createElement("div"); box.className = "chart";
  const heading = document.createElement("h4"); heading.textContent = title;
  const canvas = document.createElement("canvas"); box.append(heading, canvas); parent.append(box);
  new Chart(canvas, {type: "line", data: {labels, datasets}, options: {animation: false, responsive: true,
    elements: {point: {radius: 0}}, ...options}});
}
for (const run of runs) {
  const root = document.getElementById(`run-${run.window}`);
  const history = run.history;
  chart(root, "Training curves (loss per epoch, MSE on scaled values)", history.loss.map((_, i) => i + 1),
    Object.entries(history).map(([k, v], i) => ({label: k, data: v, borderColor: i ? "#fd7e14" : "#0d6efd"})));
  for (const [name, plot] of Object.entries(run.plots)) {
    if (plot.actual) {
      const labels = plot.dates.flat();
      const gap = (rows) => rows.flatMap((row) => [...row.slice(0, -1), row[row.length - 1]]);
      const sets = ["actual", "model", "naive", "seasonal_naive"].filter((k) => plot[k]).map((k) => (
        {label: k, data: gap(plot[k]), borderColor: colours[k], borderDash: k === "actual" ? [] : [4, 3]}));
      chart(root, `${name}: forecast vs actual on held-out windows (one window after another)`, labels, sets);
      const residuals = plot.model.flat().map((v, i) => v - plot.actual.flat()[i]);
      chart(root, `${name}: residuals (forecast - actual)`, labels, [{label: "residual", data: residuals,
        borderColor: "#dc3545"}]);
    } else {
      chart(root, `${name}: test part with injected anomalies`, plot.dates, [{label: "value", data: plot.values,
        borderColor: "#198754"}, {label: "injected", data: plot.values.map((v, i) => plot.labels[i] ? v : null),
        borderColor: "#dc3545", showLine: false, pointRadius: 3}]);
      chart(root, `${name}: anomaly score per point and threshold`, plot.dates, [{label: "score",
        data: plot.scores, borderColor: "#0d6efd"}, {label: "threshold", data: plot.scores.map(() => run.threshold),
        borderColor: "#dc3545", borderDash: [4, 3]}]);
    }
  }
}
"""

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:1100px;color:#212529}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dee2e6;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}.chart{max-width:1000px;margin:1rem 0}.best{background:#d1e7dd}
pre{background:#f8f9fa;padding:.5rem;overflow:auto}"""


def _number(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics_table(table: dict) -> str:
    names = [n for n in table if n != "relative_mae"]
    rows = ["<tr><th>forecast</th>" + "".join(f"<th>{m}</th>" for m in METRICS) + "<th>MAE / this baseline's MAE</th></tr>"]
    for name in names:
        relative = "" if name == "model" else _number(table["relative_mae"].get(name))
        rows.append(f"<tr><td>{name}</td>" + "".join(f"<td>{_number(table[name][m])}</td>" for m in METRICS)
                    + f"<td>{relative}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _run_section(run: dict) -> str:
    parts = [f"<section id='run-{run['window']}'><h2>Window {run['window']}, horizon {run['horizon']}"
             f"{' (best, promoted)' if run.get('best') else ''}</h2>",
             f"<p>Registry version <b>{html.escape(run['version'])}</b>; {run['epochs_run']} epochs in "
             f"{run['seconds']:.0f} s; windows train/validation/test: {run['windows']}.</p>"]
    metrics = run["metrics"]
    if "heldout" in metrics:
        parts.append("<h3>Held-out metrics (all series, window-weighted)</h3>")
        parts.append("<p>MASE is the MAE divided by the in-sample "
                     f"{'seasonal-' if metrics['heldout']['season'] > 1 else ''}naive error of the training part; "
                     "the last column below 1 means the model beats that baseline on the same windows.</p>")
        parts.append(_metrics_table(metrics["heldout"]["overall"]))
        for name, table in metrics["heldout"]["per_series"].items():
            parts.append(f"<h4>{html.escape(name)}</h4>" + _metrics_table(table))
    if "anomaly" in metrics:
        injected = metrics["anomaly"]["injected"]
        parts.append(f"<h3>Anomalies</h3><p>{html.escape(injected['method'])}. Threshold "
                     f"{metrics['anomaly']['threshold']['value']:.4g} ({html.escape(metrics['anomaly']['threshold']['method'])}).</p>")
        rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{s['anomalous_points']}</td><td>{s['auroc']:.3f}</td>"
                       f"<td>{s['precision_at_k']:.3f}</td><td>{s['flagged']}</td></tr>"
                       for n, s in injected["per_series"].items())
        parts.append("<table><tr><th>series</th><th>anomalous points</th><th>AUROC</th><th>precision@k</th>"
                     f"<th>flagged at threshold</th></tr>{rows}</table>")
    if metrics.get("walk_forward"):
        folds = metrics["walk_forward"]["folds"]
        rows = "".join("<tr>" + f"<td>{i}</td>" + "".join(f"<td>{_number(f.get(k))}</td>" for k in (
            "train_windows", "test_windows", "mae_scaled", "naive_mae_scaled", "relative_mae_naive")) + "</tr>"
            for i, f in enumerate(folds, 1))
        parts.append("<h3>Walk-forward cross-validation (TimeSeriesSplit)</h3><table><tr><th>fold</th>"
                     "<th>train windows</th><th>test windows</th><th>MAE (scaled)</th><th>naive MAE</th>"
                     f"<th>ratio</th></tr>{rows}</table>")
    return "".join(parts) + "</section>"


def write(path: Path, title: str, runs: list[dict], data_report: list[dict], config: dict) -> Path:
    """Write the report; ``runs``: one dict per window (metrics, history, plots, version…)."""
    comparison = ""
    if len(runs) > 1 and all("heldout" in r["metrics"] for r in runs):
        rows = "".join(f"<tr class='{'best' if r.get('best') else ''}'><td>{r['window']}</td><td>{r['horizon']}</td>"
                       f"<td>{r['metrics']['heldout']['overall']['model']['mase']:.4g}</td>"
                       f"<td>{r['validation_loss']:.4g}</td></tr>" for r in runs)
        comparison = ("<h2>Windows compared</h2><table><tr><th>window</th><th>horizon</th><th>held-out MASE</th>"
                      f"<th>best validation loss (chooses)</th></tr>{rows}</table>")
    payload = json.dumps([{"window": r["window"], "history": r["history"], "plots": r["plots"],
                           "threshold": r["metrics"].get("anomaly", {}).get("threshold", {}).get("value")}
                          for r in runs]).replace("</", "<\\/")
    document = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>
{comparison}{''.join(_run_section(r) for r in runs)}
<h2>Data (validation report)</h2><pre>{html.escape(json.dumps(data_report, indent=1, ensure_ascii=False))}</pre>
<h2>configuracion.json</h2><pre>{html.escape(json.dumps(config, indent=1, ensure_ascii=False))}</pre>
<script id="data" type="application/json">{payload}</script>
<script>{CHARTJS.read_text()}</script><script>{SCRIPT}</script></body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
