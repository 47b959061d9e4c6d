"""``riim series train`` end to end on the real CO2 series: killed mid-training, resumed from its checkpoint,
published (card, ONNX, Keras), predictions and the HTML report written, then served by the API."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from models import atomic
from models.registry import Registry
from tests.conftest import serving_app

pytestmark = pytest.mark.tensorflow
RIIM = [sys.executable, "-c", "from cli.main import main; main()"]
EPOCHS, WINDOW = 20, 10


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Run 1 is killed (SIGKILL) after its third checkpoint; run 2 resumes it with --resume."""
    from training.series_data import import_series

    root = tmp_path_factory.mktemp("series-train")
    import_series(root / "raw", ["co2"])
    rows = (root / "raw" / "co2" / "co2.csv").read_text().splitlines()
    (root / "datos").mkdir()
    (root / "datos" / "co2.csv").write_text("\n".join(rows[:1] + rows[-420:]) + "\n")  # the last 420 weeks: quick
    config = {"ruta_datos": "datos", "ruta_modelo": "modelos", "ruta_checkpoints": "checkpoints",
              "ruta_predicciones": "salida/predicciones.txt", "ventana": WINDOW,
              "parametros_entrenamiento": {"epochs": EPOCHS, "batch_size": 32, "learning_rate": 0.01},
              "modelo": "lstm", "estacionalidad": 52, "validacion_cruzada": 2, "formatos": ["onnx"]}
    (root / "configuracion.json").write_text(json.dumps(config))
    command = RIIM + ["series", "train", "--config", str(root / "configuracion.json"), "--models-dir",
                      str(root / "store"), "--log-json"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    first = subprocess.Popen(command + ["--progress-file", str(root / "progress-1.json")], env=environment,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state_file = root / "checkpoints" / f"series-price-w{WINDOW}" / "state.json"
    deadline = time.monotonic() + 240
    try:
        while (atomic.read_json(state_file) or {}).get("epoch", 0) < 3:
            assert first.poll() is None and time.monotonic() < deadline, "run 1 ended or stalled before epoch 3"
            time.sleep(0.05)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = atomic.read_json(state_file)["epoch"]
    second = subprocess.run(command + ["--resume", "--progress-file", str(root / "progress-2.json"), "--result-file",
                                       str(root / "result.json")], env=environment, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    return {"root": root, "killed_at": killed_at, "registry": Registry(root / "store"), "stdout": second.stdout}


def test_the_run_resumes_after_a_kill_and_finishes_the_epochs(trained):
    assert 3 <= trained["killed_at"] < EPOCHS
    progress = json.loads((trained["root"] / "progress-2.json").read_text())
    assert progress["state"] == "done" and progress["resumed_from_epoch"] >= trained["killed_at"]
    card = trained["registry"].card("series-price")
    assert len(card["training"]["history"]["loss"]) == EPOCHS  # the killed run's epochs + the resumed ones


def test_the_published_card_onnx_and_metrics(trained):
    registry = trained["registry"]
    card = registry.card("series-price")
    assert registry.current("series-price") == card["version"] and card["task"] == "time-series-forecasting"
    spec = card["series"]
    assert (spec["window"], spec["horizon"], spec["features"], spec["scaler"]["fitted_on"]) == (WINDOW, 3, ["co2"], "train")
    assert spec["scaler"]["rows"] == round(420 * 0.7)  # fitted on the training part only
    assert card["parity"]["onnx_fp32_vs_keras"]["max_abs_diff"] < 1e-4
    overall = card["metrics"]["heldout"]["overall"]
    assert set(overall) >= {"model", "naive", "seasonal_naive", "relative_mae"}
    assert overall["model"]["windows"] == overall["naive"]["windows"] == overall["seasonal_naive"]["windows"] > 10
    assert overall["relative_mae"]["seasonal_naive"] < 1  # a seasonal series: the LSTM beats last year's values
    assert len(card["metrics"]["walk_forward"]["folds"]) == 2
    assert (trained["root"] / "modelos" / f"series-price-w{WINDOW}.h5").is_file()


def test_predictions_in_the_documents_format_and_with_timestamps(trained):
    out = trained["root"] / "salida"
    lines = (out / "predicciones.txt").read_text().splitlines()
    assert len(lines) == 3 and all(np.isfinite(float(line)) for line in lines)
    rows = list(csv.DictReader((out / "predicciones.csv").open()))
    assert [row["timestamp"] for row in rows] == ["2002-01-05", "2002-01-12", "2002-01-19"]  # weekly after the end
    assert [float(row["prediction"]) for row in rows] == [float(line) for line in lines]
    report = (out / "informe-series-price.html").read_text()
    assert "<script src" not in report and "Chart" in report and "seasonal_naive" in report


def test_the_api_serves_the_trained_model(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    client = serving_app({"MODELS_DIR": str(trained["registry"].root)}).test_client()
    sequence = trained["registry"].card("series-price")["series"]["last_window"]["co2"]
    answer = client.post("/api/v1/dl/predict-price", json={"sequence": sequence})
    assert answer.status_code == 200, answer.json
    written = [float(line) for line in (trained["root"] / "salida" / "predicciones.txt").read_text().splitlines()]
    assert answer.json["predictions"] == pytest.approx(written, abs=1e-3)  # ONNX Runtime = the Keras run's step 6
    assert client.post("/api/v1/dl/predict-price", json={"sequence": sequence[1:]}).status_code == 400
