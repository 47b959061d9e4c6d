"""Time series (issue 18): accuracy against the baselines, anomaly detection, training time and API latency.

For every real series of ``riim data import series`` (msft, msft-spread, stocks = AAPL/IBM/MSFT, co2,
sunspots) it trains the LSTM, the GRU and the 1-D CNN with the seven-step trainer (cli/series.py, same code
as ``riim series train``) and prints the held-out MASE of the model, the naive and the seasonal-naive
forecasts on the same windows, and MAE(model) / MAE(baseline). The autoencoder is trained on co2, msft and
sunspots and scored on the real test parts with injected spikes and level shifts (AUROC, precision@k).
Then the app serves the registry on loopback (werkzeug, a real HTTP server in a thread) and each model's
predict-price / detect-anomalies p50 and p95 are measured over HTTP.

    nice -n 5 .venv/bin/python benchmarks/bench_series.py [--epochs 30] [--quick] [--out results.json]

Training time is the fit (+ held-out evaluation) of each model in this process on the machine's cores;
the load average is printed before and after, since the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WINDOWS = {"msft": 30, "msft-spread": 30, "stocks": 30, "co2": 52, "sunspots": 22}
COLUMNS = {"msft-spread": "spread"}
FORECASTERS = ("lstm", "gru", "cnn")
ANOMALY_SERIES = ("co2", "msft", "sunspots")


def train_all(work: Path, store: Path, epochs: int, quick: bool, kinds: tuple[str, ...]) -> list[dict]:
    from cli import series as series_cli
    from models import series_config
    from models.registry import Registry
    from models.series import SERIES
    from training.progress import Progress
    from training.series_data import import_series

    if not (work / "data").is_dir():
        import_series(work / "data")
    registry = Registry(store)
    rows = []
    plan = [(kind, name) for name in WINDOWS for kind in FORECASTERS] + [("autoencoder", n) for n in ANOMALY_SERIES]
    plan = [(kind, name) for kind, name in plan if kind in kinds]
    if quick:
        plan = [("lstm", "co2"), ("autoencoder", "co2")]
    for number, (kind, name) in enumerate(plan, 1):
        config = {"ruta_datos": f"data/{name}", "ruta_modelo": "modelos", "ruta_checkpoints": "checkpoints",
                  "ruta_predicciones": f"predicciones/{kind}-{name}.txt", "ventana": WINDOWS[name],
                  "parametros_entrenamiento": {"epochs": epochs, "batch_size": 64, "learning_rate": 0.001,
                                               "paciencia": 5},
                  "modelo": kind, "nombre": f"bench-{kind}-{name}", "estacionalidad": SERIES[name],
                  "validacion_cruzada": 0, "formatos": ["onnx"]}
        if name in COLUMNS:
            config["columna"] = COLUMNS[name]
        started = time.perf_counter()
        summary = series_cli.run(series_config.from_dict(config, work), registry, Progress(bars=False),
                                 report=False, echo=lambda _: None)
        seconds = time.perf_counter() - started
        run = summary["runs"][0]
        card = registry.card(summary["model"], run["version"])
        row = {"model": kind, "series": name, "window": WINDOWS[name], "horizon": card["series"]["horizon"],
               "season": SERIES[name], "epochs_run": card["training"]["epochs_run"],
               "fit_seconds": card["training"]["seconds"], "total_seconds": round(seconds, 1),
               "windows": card["training"]["windows"], "registry": summary["model"]}
        if "heldout" in run["metrics"]:
            overall = run["metrics"]["heldout"]["overall"]
            row.update({f"mase_{k}": overall[k]["mase"] for k in ("model", "naive", "seasonal_naive") if k in overall})
            row.update({f"mae_ratio_{k}": v for k, v in overall["relative_mae"].items()})
            row["directional_accuracy"] = overall["model"]["directional_accuracy"]
            print(f"[{number}/{len(plan)}] {kind:5s} {name:12s} w{row['window']} h{row['horizon']}: MASE model "
                  f"{row['mase_model']:.3f} naive {row['mase_naive']:.3f} seasonal-naive "
                  f"{row.get('mase_seasonal_naive', float('nan')):.3f} | MAE/naive {row['mae_ratio_naive']:.3f} "
                  f"MAE/seasonal {row.get('mae_ratio_seasonal_naive', float('nan')):.3f} | dir.acc "
                  f"{row['directional_accuracy']:.3f} | fit {row['fit_seconds']:.0f} s ({row['epochs_run']} epochs), "
                  f"total {seconds:.0f} s", flush=True)
        else:
            injected = run["metrics"]["anomaly"]["injected"]
            row.update(auroc=injected["mean_auroc"], precision_at_k=injected["mean_precision_at_k"],
                       per_series={k: {m: v[m] for m in ("auroc", "precision_at_k", "anomalous_points", "points")}
                                   for k, v in injected["per_series"].items()})
            print(f"[{number}/{len(plan)}] autoencoder {name:12s} w{row['window']}: injected anomalies AUROC "
                  f"{row['auroc']:.3f} precision@k {row['precision_at_k']:.3f} | fit {row['fit_seconds']:.0f} s "
                  f"({row['epochs_run']} epochs), total {seconds:.0f} s", flush=True)
        rows.append(row)
    return rows


def serve(store: Path):
    from werkzeug.serving import make_server

    from app import create_app, prepare

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    os.environ["RIIM_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="bench-series-instance-")
    application = create_app({"MODELS_DIR": str(store), "RATELIMIT_ENABLED": False})
    prepare(application)
    server = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def latency(base: str, rows: list[dict], repeats: int) -> None:
    from models.registry import Registry

    for row in rows:
        registry = Registry(os.environ["BENCH_SERIES_STORE"])
        spec = registry.card(row["registry"])["series"]
        values = next(iter(spec["last_window"].values()))
        if row["model"] == "autoencoder":
            url, body = f"{base}/api/v1/dl/detect-anomalies?model={row['registry']}", {"series": values * 4}
        else:
            url, body = f"{base}/api/v1/dl/predict-price?model={row['registry']}", {"sequence": values}
        post(url, body)  # loads the ONNX session
        http, inference = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            answer = post(url, body)
            http.append((time.perf_counter() - started) * 1e3)
            inference.append(answer["inference_ms"])
        row.update(http_p50_ms=float(np.percentile(http, 50)), http_p95_ms=float(np.percentile(http, 95)),
                   onnx_p50_ms=float(np.percentile(inference, 50)))
        print(f"{row['model']:11s} {row['series']:12s} {'detect-anomalies' if row['model'] == 'autoencoder' else 'predict-price':16s}"
              f" HTTP p50 {row['http_p50_ms']:.2f} ms p95 {row['http_p95_ms']:.2f} ms (ONNX Runtime p50 "
              f"{row['onnx_p50_ms']:.3f} ms)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--models", default="lstm,gru,cnn,autoencoder", help="Comma-separated kinds to train.")
    parser.add_argument("--quick", action="store_true", help="One LSTM and one autoencoder on co2 (a smoke run).")
    parser.add_argument("--work", type=Path, help="Folder for data, registry and predictions (default: temporary).")
    parser.add_argument("--out", type=Path, help="Write every figure as JSON here (with --latency-only: read and update it).")
    parser.add_argument("--latency-only", action="store_true",
                        help="Skip training: measure the API on the models of an earlier run (--work and --out).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-series-"))
    store = work / "store"
    os.environ["BENCH_SERIES_STORE"] = str(store)
    print(f"cores {os.cpu_count()}, load average before {os.getloadavg()}, work {work}", flush=True)
    started = time.perf_counter()
    if args.latency_only:
        rows = json.loads(args.out.read_text())["rows"]
    else:
        rows = train_all(work, store, args.epochs, args.quick, tuple(args.models.split(",")))
        print(f"training done in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}", flush=True)
    server, base = serve(store)
    try:
        latency(base, rows, args.repeats)
    finally:
        server.shutdown()
    print(f"load average after {os.getloadavg()}", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"epochs": args.epochs, "cores": os.cpu_count(), "load": os.getloadavg(),
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
