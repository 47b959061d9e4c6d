"""Time series without TensorFlow: configuracion.json, data validation, the numeric kernels, and the
/api/v1/dl endpoints (their answers and every 4xx) on real linear ONNX models of the real CO2 series."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import series as ts
from models import series_config
from models.registry import Registry
from tests import series_support
from tests.conftest import ADMIN, serving_app
from training import series_data

DOCUMENT = {  # the source document's example, with relative paths
    "ruta_datos": "datos/forex", "ruta_modelo": "modelos", "ruta_checkpoints": "checkpoints",
    "ruta_predicciones": "predicciones.txt", "ventana": 100,
    "parametros_entrenamiento": {"epochs": 50, "batch_size": 32, "learning_rate": 0.001},
}


# --- configuracion.json ---------------------------------------------------------------------------------

def test_the_documents_config_loads_with_paths_resolved_against_its_folder(tmp_path):
    path = tmp_path / "proyecto" / "configuracion.json"
    path.parent.mkdir()
    path.write_text(json.dumps(DOCUMENT))
    config = series_config.load(path)
    assert config.data == path.parent / "datos" / "forex"
    assert config.predictions == path.parent / "predicciones.txt"
    assert (config.windows, config.epochs, config.batch_size, config.learning_rate) == ((100,), 50, 32, 0.001)
    assert (config.model, config.name, config.task) == ("lstm", "series-price", "time-series-forecasting")
    assert ts.horizon_for(100) == 30 and ts.horizon_for(30) == 9 and ts.horizon_for(5) == 2


def test_english_aliases_and_a_list_of_windows():
    english = {"data_path": "d", "model_path": "m", "checkpoints_path": "c", "predictions_path": "p.txt",
               "window": [20, 40], "training_parameters": {"epochs": 2, "batch_size": 8, "learning_rate": 0.01},
               "model": "gru", "seasonality": 5}
    config = series_config.from_dict(english, series_config.SCHEMA_PATH.parent)
    assert config.windows == (20, 40) and config.model == "gru" and config.name == "series-spread" and config.season == 5


@pytest.mark.parametrize("change, named", [
    ({"ruta_datos": None}, "ruta_datos"),  # removed
    ({"ventana": 2}, "ventana: must be an integer from 4 to 1000"),
    ({"ventana": [10, 10]}, "ventana"),
    ({"parametros_entrenamiento": {"epochs": "50", "batch_size": 32, "learning_rate": 0.001}}, "parametros_entrenamiento.epochs"),
    ({"parametros_entrenamiento": {"epochs": 5, "batch_size": 32}}, "'learning_rate' is a required property"),
    ({"parametros_entrenamiento": {"epochs": 5, "batch_size": 0, "learning_rate": 0.001}}, "parametros_entrenamiento.batch_size"),
    ({"modelo": "transformer"}, "modelo"),
    ({"ventanas": 10}, "'ventanas' was unexpected"),
    ({"window": 10}, "ventana: given twice"),
    ({"formatos": ["tfjs"]}, "formatos"),
])
def test_config_errors_name_the_key(change, named):
    data = {**DOCUMENT, **change}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(series_config.ConfigError) as caught:
        series_config.validate(data)
    assert any(named in problem for problem in caught.value.problems), caught.value.problems


def test_config_file_errors(tmp_path):
    with pytest.raises(series_config.ConfigError, match="does not exist"):
        series_config.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{ruta_datos: 1")
    with pytest.raises(series_config.ConfigError, match="not valid JSON"):
        series_config.load(tmp_path / "bad.json")


# --- data validation -----------------------------------------------------------------------------------

def write(tmp_path, text: str, name: str = "serie.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("fecha,precio\n2024-01-01,1\nno es fecha,2\n2024-01-03,3\n", r"1 dates could not be read .*rows 3"),
    ("date,close\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n", r"1 duplicated dates \(rows 4\)"),
    ("date,close\n2024-01-01,1\n2024-01-02,abc\n2024-01-03,3\n", r"not numbers \(rows 3\)"),
    ("date,close\n2024-01-01,1\n2024-01-02,\n2024-01-03,\n", r"2 of 3 values of 'close' are missing"),
    ("date,a,b\n2024-01-01,1,2\n2024-01-02,2,3\n", "several numeric columns"),
    ("date\n2024-01-01\n", "needs a date column and at least one numeric column"),
])
def test_bad_data_is_refused_with_the_file_and_rows(tmp_path, text, message):
    with pytest.raises(series_data.SeriesDataError, match=message) as caught:
        series_data.load_folder(write(tmp_path, text))
    assert "serie.csv" in str(caught.value)


def test_missing_values_are_filled_gaps_reported_and_ohlc_gives_a_spread(tmp_path):
    rows = ["date,open,high,low,close"] + [f"2024-01-{day:02d},1,{3 + day},{1 + day},2" for day in range(1, 31)
                                           if day not in (13, 14)]
    rows[5] = rows[5].rsplit(",", 1)[0] + ","  # one close missing
    write(tmp_path, "\n".join(rows[:1] + rows[:0:-1]) + "\n", "ohlc.csv")  # newest first: sorted by the loader
    close = series_data.load_folder(tmp_path)[0]
    assert close.report["ohlc"] and close.report["missing"] == 1 and not close.report["sorted"]
    assert close.report["gaps"]["count"] == 1 and "filled" in close.report
    assert np.isfinite(close.values).all() and (np.diff(close.dates) > np.timedelta64(0)).all()
    spread = series_data.load_folder(tmp_path, "spread")[0]
    assert spread.report["derived"] == "spread = high - low" and np.allclose(spread.values, 2)


def test_the_real_series_import_and_validate(tmp_path):
    written = series_data.import_series(tmp_path / "data", ["co2", "sunspots"])
    assert written == {"co2": {"co2": 2284}, "sunspots": {"sunspots": 309}}
    co2 = series_data.load_folder(tmp_path / "data" / "co2")[0]
    assert co2.report["missing"] == 59 and co2.report["gaps"]["step"] == "7 days 00:00:00"
    sunspots = series_data.load_folder(tmp_path / "data" / "sunspots")[0]
    assert str(sunspots.dates[0])[:4] == "1700" and len(sunspots.values) == 309
    with pytest.raises(FileExistsError):
        series_data.import_series(tmp_path / "data", ["co2"])


# --- numeric kernels ---------------------------------------------------------------------------------

def test_windows_baselines_and_metrics_by_hand():
    values = np.arange(10.0)
    past, future = ts.windows(values, 4, 2)
    assert past.shape == (5, 4) and future[0].tolist() == [4, 5] and past[-1].tolist() == [4, 5, 6, 7]
    series = np.array([1, 2, 3, 10, 20, 30, 11, 21.0])
    assert ts.seasonal_naive(series, np.array([6]), 2, 3).tolist() == [[10, 20]]
    assert ts.seasonal_naive(series, np.array([6]), 4, 3).tolist() == [[10, 20, 30, 10]]
    truth, predicted, last = np.array([[2.0, 4.0]]), np.array([[3.0, 3.0]]), np.array([1.0])
    metrics = ts.forecast_metrics(truth, predicted, last, scale=2.0)
    assert metrics["mae"] == 1 and metrics["rmse"] == 1 and metrics["mase"] == 0.5
    assert metrics["mape"] == pytest.approx(37.5) and metrics["directional_accuracy"] == 1.0
    scaler = ts.Scaler.fit(np.array([1.0, 3.0]))
    assert ts.decode(ts.encode_target(past, future, scaler), past, scaler) == pytest.approx(future)


def test_anomaly_kernels():
    assert ts.auroc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert ts.auroc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]) == pytest.approx(0.875)
    assert ts.precision_at_k([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.2], 2) == 0.5
    errors = np.array([[1.0, 1.0], [3.0, 3.0]])  # two windows of 2 over 3 points
    assert ts.point_scores(errors, 3).tolist() == [1.0, 2.0, 3.0]


# --- the API on real linear models ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    root = tmp_path_factory.mktemp("series-linear")
    dates, values = series_support.co2(root)
    registry = Registry(root / "store")
    return registry, series_support.publish(registry, dates, values)


@pytest.fixture(scope="module")
def dl_app(linear, tmp_path_factory):
    import os

    os.environ["RIIM_INSTANCE_PATH"] = str(tmp_path_factory.mktemp("series-instance"))
    try:
        return serving_app({"MODELS_DIR": str(linear[0].root)})
    finally:
        del os.environ["RIIM_INSTANCE_PATH"]


def test_linear_models_are_real_forecasters(linear):
    heldout = linear[1]["heldout"]
    assert heldout["relative_mae"]["naive"] < 1 and heldout["relative_mae"]["seasonal_naive"] < 1


def test_model_info_describes_the_device_and_the_series_models(dl_app):
    answer = dl_app.test_client().get("/api/v1/dl/model-info").json
    assert answer["device"]["accelerator"] in ("cpu", "gpu") and "CPUExecutionProvider" in answer["onnxruntime"]["providers"]
    names = {model["name"]: model for model in answer["models"]}
    assert names["series-price"]["series"]["horizon"] == series_support.HORIZON
    assert names["series-anomaly"]["anomaly"]["threshold"]["value"] > 0
    assert "/api/v1/dl/train-price-predictor" in answer["train_endpoints"]


def test_predict_price_answers_what_the_model_computes(dl_app, linear):
    facts = linear[1]
    sequence = facts["values"][-series_support.WINDOW:]
    answer = dl_app.test_client().post("/api/v1/dl/predict-price", json={"sequence": sequence.tolist()}).json
    scaler = facts["scaler"]
    expected = ts.decode(ts.encode(sequence[None], scaler)[..., 0] @ facts["matrix"] + facts["bias"], sequence[None], scaler)[0]
    assert answer["horizon"] == len(answer["predictions"]) == series_support.HORIZON
    assert answer["predictions"] == pytest.approx(expected, abs=1e-3)
    assert answer["baselines"]["naive"] == [sequence[-1]] * series_support.HORIZON


@pytest.mark.parametrize("body, status, code, words", [
    ({"sequence": [1.0] * 25}, 400, "series_bad_length", ["26", "25"]),
    ({"sequence": [1.0] * 25 + ["7"]}, 400, "series_not_number", ["sequence", "[25]"]),
    ({"sequence": [1.0] * 25 + [True]}, 400, "series_not_number", ["[25]"]),
    ({"sequence": [1.0] * 25 + [None]}, 400, "series_not_number", ["[25]"]),
    ({"sequence": "1,2,3"}, 400, "series_bad_body", ["sequence"]),
    ({"values": [1.0] * 26}, 400, "series_bad_body", ["sequence"]),
    ([1.0] * 26, 400, "series_bad_body", ["sequence"]),
])
def test_predict_price_4xx_names_what_is_wrong(dl_app, body, status, code, words):
    answer = dl_app.test_client().post("/api/v1/dl/predict-price?lang=en", json=body)
    assert answer.status_code == status and answer.json["error"]["code"] == code
    assert all(word in answer.json["error"]["message"] for word in words), answer.json


def test_nan_and_unknown_models_are_4xx(dl_app):
    client = dl_app.test_client()
    body = "{\"sequence\": [" + ", ".join(["1"] * 25) + ", NaN]}"
    answer = client.post("/api/v1/dl/predict-price", data=body, content_type="application/json")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "series_not_finite"
    answer = client.post("/api/v1/dl/predict-price?model=series-anomaly", json={"sequence": [1.0] * 26})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "series_no_model"
    assert client.post("/api/v1/dl/predict-price", data="not json", content_type="application/json").status_code == 400


def test_detect_anomalies_finds_the_injected_spikes_with_the_calibrated_threshold(dl_app, linear):
    facts = linear[1]
    client = dl_app.test_client()
    answer = client.post("/api/v1/dl/detect-anomalies", json={"series": facts["injected"].tolist()}).json
    assert answer["threshold_source"] == "calibrated" and answer["threshold"] == pytest.approx(facts["threshold"])
    assert answer["scores"] == pytest.approx(facts["scores"].tolist(), rel=1e-3, abs=1e-6)
    flagged = {point["index"] for point in answer["flagged"]}
    assert set(np.flatnonzero(facts["labels"])) <= flagged
    everything = client.post("/api/v1/dl/detect-anomalies?threshold=0", json={"series": facts["injected"].tolist()}).json
    assert everything["threshold_source"] == "query" and len(everything["flagged"]) > len(flagged)


@pytest.mark.parametrize("query, body, code", [
    ("?threshold=-1", {"series": [1.0] * 30}, "bad_param"),
    ("?threshold=abc", {"series": [1.0] * 30}, "bad_param"),
    ("", {"series": [1.0] * 10}, "series_bad_length"),
    ("", {"series": [1.0] * 29 + ["x"]}, "series_not_number"),
    ("", {"sequence": [1.0] * 30}, "series_bad_body"),
])
def test_detect_anomalies_4xx(dl_app, query, body, code):
    answer = dl_app.test_client().post(f"/api/v1/dl/detect-anomalies{query}", json=body)
    assert answer.status_code == 400 and answer.json["error"]["code"] == code


@pytest.fixture(scope="module")
def admin(dl_app):
    from app.auth import create_user

    with dl_app.app_context():
        create_user(**ADMIN)
    client = dl_app.test_client()
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.get("/api/v1/auth/me").json["csrf_token"]
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.post("/api/v1/auth/login", json=ADMIN).json["csrf_token"]
    return client


@pytest.mark.parametrize("endpoint", ["train-price-predictor", "train-spread-predictor", "train-anomaly-detector"])
def test_training_needs_an_admin(dl_app, endpoint):
    assert dl_app.test_client().post(f"/api/v1/dl/{endpoint}?epochs=2").status_code in (400, 401)  # CSRF, then login


@pytest.mark.parametrize("query, body, name", [
    ("?epochs=0", None, "epochs"), ("?epochs=abc", None, "epochs"), ("?batch_size=100000", None, "batch_size"),
    ("?learning_rate=0", None, "learning_rate"), ("?learning_rate=nan", None, "learning_rate"),
    ("", {"window": 2}, "window"), ("", {"series": "bitcoin"}, "series"), ("", {"epochs": 1.5}, "epochs"),
    ("", {"momentum": 0.9}, "momentum"),
])
def test_training_options_are_checked_before_a_job_starts(admin, query, body, name):
    answer = admin.post(f"/api/v1/dl/train-price-predictor{query}", **({"json": body} if body else {}))
    assert answer.status_code == 400 and name in answer.json["error"]["message"], answer.json


def test_a_training_job_starts_with_the_documents_parameters_and_can_be_cancelled(admin, dl_app):
    from tests.support import kill_active_jobs

    try:
        answer = admin.post("/api/v1/dl/train-anomaly-detector?epochs=3&batch_size=16&learning_rate=0.01")
        assert answer.status_code == 202, answer.json
        job = answer.json["job"]
        assert job["kind"] == "series-anomaly" and job["project"] == "series-anomaly"
        assert job["options"] == {"epochs": 3, "batch_size": 16, "learning_rate": 0.01}
        assert answer.json["url"] == f"/api/v1/jobs/{job['id']}"
        assert admin.post("/api/v1/dl/train-price-predictor").status_code == 409  # one job at a time
        assert admin.post(f"/api/v1/jobs/{job['id']}/cancel").json["state"] == "cancelled"
    finally:
        kill_active_jobs(dl_app)


# --- the command line's exit codes (before any TensorFlow) ----------------------------------------------

def test_riim_series_train_exit_codes_name_the_problem(tmp_path):
    from click.testing import CliRunner

    from cli.series import train

    path = tmp_path / "configuracion.json"
    path.write_text(json.dumps({**DOCUMENT, "ventana": 1}))
    result = CliRunner().invoke(train, ["--config", str(path), "--no-report"])
    assert result.exit_code == 2 and "ventana" in result.output
    path.write_text(json.dumps(DOCUMENT))
    (tmp_path / "datos" / "forex").mkdir(parents=True)
    write(tmp_path / "datos" / "forex", "date,close\n2024-01-01,1\n2024-01-01,2\n", "eurusd.csv")
    result = CliRunner().invoke(train, ["--config", str(path), "--models-dir", str(tmp_path / "store")])
    assert result.exit_code == 3 and "eurusd.csv: 1 duplicated dates" in result.output
    assert (tmp_path / "modelos").is_dir() and (tmp_path / "checkpoints").is_dir()  # step 2 ran
    assert CliRunner().invoke(train, ["--no-report"]).exit_code == 2


def test_presets_write_a_valid_config_for_a_real_series(tmp_path):
    from cli.series import preset_config

    path = preset_config("anomaly", tmp_path / "job", 3, 16, 0.01, window=20, series="sunspots")
    config = series_config.load(path)
    assert (config.model, config.name, config.windows, config.season, config.column) == (
        "autoencoder", "series-anomaly", (20,), 11, None)
    assert series_data.load_folder(config.data)[0].report["rows"] == 309
    assert json.loads(path.read_text())["parametros_entrenamiento"] == {"epochs": 3, "batch_size": 16, "learning_rate": 0.01}


def test_json_integers_written_as_floats_and_the_lang_parameter_are_accepted(admin, dl_app):
    from tests.support import kill_active_jobs

    try:
        answer = admin.post("/api/v1/dl/train-spread-predictor", json={"epochs": 2.0, "batch_size": 16.0, "series": "co2"})
        assert answer.status_code == 202 and answer.json["job"]["options"]["epochs"] == 2, answer.json
        admin.post(f"/api/v1/jobs/{answer.json['job']['id']}/cancel")
        answer = admin.post("/api/v1/dl/train-spread-predictor?lang=en&epochs=2&series={}")
        assert answer.status_code == 400 and "series" in answer.json["error"]["message"]  # never a 500
    finally:
        kill_active_jobs(dl_app)
