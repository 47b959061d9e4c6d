"""CNN lab with real tiny training runs on Fashion-MNIST: every alert rule provoked by a real run, the
webhook posted to a receiver on 127.0.0.1, runs read back with MLflow's own client (mlflow.search_runs),
publish + ONNX/TF.js export checked through the card's transforms, a small Optuna sweep and retrain-best."""
from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from cli.lab import lab
from models import lab_config
from models import transforms as T
from models.registry import Registry
from training import alerts, lab_cnn, lab_data, tracking

TINY = ["--set", "data.train_images=300", "--set", "data.test_images=100", "--set", "model.width=8",
        "--set", "model.dense=32", "--set", "train.batch_size=32"]


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIIM_LAB_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def webhook():
    """An HTTP receiver on 127.0.0.1 that keeps every JSON body posted to it."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()


def read_alerts(folder) -> list[dict]:
    path = folder / alerts.FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def invoke(*args):
    return CliRunner().invoke(lab, [*args], catch_exceptions=False)


@pytest.fixture(scope="module")
def published(lab_dir, tmp_path_factory):
    """A real run through `riim lab train`: tiny training set, no dropout, no early stopping — it overfits,
    reaches the accuracy threshold, finishes, publishes and exports."""
    store = tmp_path_factory.mktemp("store")
    result = invoke("train", "--models-dir", str(store), "--name", "tiny-cnn", *TINY,
                    "--set", "data.train_images=40", "--set", "train.validation_fraction=0.5",
                    "--set", "model.width=16", "--set", "model.dense=256", "--set", "model.dropout=0",
                    "--set", "model.head_dropout=0", "--set", "train.epochs=16", "--set", "train.learning_rate=0.003",
                    "--set", "train.early_stopping=false", "--set", "alerts.overfit_epochs=2",
                    "--set", "alerts.accuracy_threshold=0.3")
    assert result.exit_code == 0, result.output
    return Registry(store), result.output


def test_a_run_that_overfits_publishes_and_is_read_back_by_mlflow(published, lab_dir):
    registry, output = published
    card = registry.card("tiny-cnn")
    assert card["task"] == "small-image-classification" and "published" in output
    assert [step["name"] for step in card["transforms"]] == ["channels", "resize", "normalize"]
    assert card["parity"]["onnx_vs_keras"]["max_abs_diff"] < 1e-4 and {"onnx", "tfjs", "sample"} <= set(card["files"])
    rules = [a["rule"] for a in read_alerts(lab_dir) if a.get("model") == "tiny-cnn"]
    assert {"overfitting", "threshold", "finished"} <= set(rules)

    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri(lab_dir))
    runs = mlflow.search_runs(experiment_names=["lab"], filter_string="tags.`riim.model` = 'tiny-cnn'")
    assert len(runs) == 1 and runs.loc[0, "status"] == "FINISHED"
    assert runs.loc[0, "params.model.width"] == "16" and runs.loc[0, "tags.riim.version"] == card["version"]
    assert runs.loc[0, "metrics.test_accuracy"] == pytest.approx(card["metrics"]["test"]["accuracy"])
    client = mlflow.MlflowClient()
    history = client.get_metric_history(runs.loc[0, "run_id"], "val_loss")
    assert [m.step for m in history] == list(range(1, 17))
    artifacts = {a.path for a in client.list_artifacts(runs.loc[0, "run_id"])}
    assert {"card.json", "curves.png", "confusion_matrix.png", "alerts.json"} <= artifacts


def test_serving_steps_reproduce_the_training_input(published):
    """The card's transforms (TF-free, what serving runs) + ONNX Runtime on the same 100 raw test images
    reproduce the test accuracy training measured with Keras on its own pipeline."""
    import onnxruntime as ort

    registry, _ = published
    card = registry.card("tiny-cnn")
    data = lab_data.load("fashion-mnist", lab_config.DataLimits(test_images=100), 0.1)
    batch = T.Pipeline.from_card(card["transforms"]).batch(data.x_test)
    session = ort.InferenceSession(str(registry.file("tiny-cnn", None, "onnx")))
    answers = session.run(None, {"image": batch})[0].argmax(1)
    assert np.mean(answers == data.y_test) == pytest.approx(card["metrics"]["test"]["accuracy"], abs=0.011)


def test_a_diverging_learning_rate_raises_divergence_nan_and_failed_and_posts_them(lab_dir, webhook, tmp_path):
    url, received = webhook
    divergent = invoke("train", "--models-dir", str(tmp_path), "--name", "diverges", *TINY, "--webhook", url,
                       "--set", "train.learning_rate=30", "--set", "train.epochs=6", "--set", "train.early_stopping=false",
                       "--set", "alerts.divergence_factor=1.5", "--no-export")
    broken = invoke("train", "--models-dir", str(tmp_path), "--name", "breaks", *TINY, "--webhook", url,
                    "--set", "train.learning_rate=1e12", "--set", "train.epochs=2")
    assert divergent.exit_code == 0 and broken.exit_code == 1 and "loss became nan" in broken.output
    by_model = {}
    for alert in read_alerts(lab_dir):
        by_model.setdefault(alert.get("model"), set()).add(alert["rule"])
    assert "divergence" in by_model["diverges"] and {"nan_loss", "failed"} <= by_model["breaks"]
    posted = {(a["model"], a["rule"]) for a in received}
    assert {("diverges", "divergence"), ("breaks", "nan_loss"), ("breaks", "failed")} <= posted
    assert not (tmp_path / "breaks").exists() or not Registry(tmp_path).versions("breaks")


def test_a_learning_rate_too_small_plateaus_with_augmentation_recorded(lab_dir):
    config = lab_config.from_dict({"data": {"train_images": 300, "test_images": 100},
                                   "model": {"width": 8, "dense": 32}, "augment": {"strength": 0.5},
                                   "train": {"epochs": 4, "learning_rate": 1e-7, "early_stopping": False},
                                   "alerts": {"plateau_epochs": 2, "min_delta": 0.01}})
    data = lab_data.load("fashion-mnist", config.data, config.train.validation_fraction)
    notifier = alerts.Notifier(lab_dir / alerts.FILE, {"model": "plateau"})
    result = lab_cnn.train(data, config, notifier=notifier)
    assert "plateau" in [a["rule"] for a in notifier.sent]
    assert result.pipeline.to_card()[-1] == {"name": "augment", "training_only": True, "library": "albumentations",
                                             "strength": 0.5, "horizontal_flip": True}


def test_a_sweep_prunes_tracks_and_retrains_its_best(lab_dir, tmp_path):
    from training import sweep

    result = invoke("sweep", "--name", "tiny", "--trials", "3", *TINY, "--set", "data.train_images=150",
                    "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    summary = json.loads(sweep.summary_path("tiny").read_text())
    assert len(summary["trials"]) == 3 and summary["default"]["number"] == 0
    assert summary["default"]["params"]["learning_rate"] == lab_config.FitConfig().learning_rate
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] + summary["counts"]["fail"] == 3
    assert set(summary["importances"]) == set(sweep.SPACE)
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"] if t["state"] == "complete")
    retrain = invoke("train", "--models-dir", str(tmp_path), "--name", "best", "--sweep", "tiny", *TINY[:4],
                     "--set", "train.epochs=1", "--no-export")
    assert retrain.exit_code == 0, retrain.output
    config = Registry(tmp_path).card("best", "v1")["training"]["config"]
    assert config["train"]["learning_rate"] == best["params"]["learning_rate"]
    assert config["model"]["width"] == best["params"]["width"]


def test_the_lab_page_shows_alerts_strip_runs_and_sweep(published, lab_dir):
    """The real page (es/en, desktop/phone) on the runs, alerts, model and sweep made above."""
    from PIL import Image

    from tests.browser_support import ARTIFACTS, chromium, guard_loopback, live_server, page_errors
    from tests.conftest import serving_app

    registry, _ = published
    app = serving_app({"MODELS_DIR": str(registry.root), "LAB_DIR": str(lab_dir), "RATELIMIT_ENABLED": False})
    client = app.test_client()
    assert client.get("/api/v1/lab/runs?kind=nothing").status_code == 400
    assert client.get("/api/v1/lab/runs/" + "0" * 32).status_code == 404
    assert client.get("/api/v1/lab/sweeps/absent").status_code == 404
    assert client.get("/api/v1/lab/models/absent/sample.png").status_code == 404
    assert client.post("/api/v1/lab/train", json={"epochs": 1}).status_code in (400, 401)  # CSRF / login first
    sample = np.asarray(Image.open(registry.file("tiny-cnn", None, "sample")))
    expected = float(T.Pipeline.from_card(registry.card("tiny-cnn")["transforms"])(sample).mean())
    png = registry.file("tiny-cnn", None, "sample").read_bytes()
    answer = client.post("/api/v1/lab/predict?model=tiny-cnn", data={"image": (io.BytesIO(png), "sample.png")},
                         content_type="multipart/form-data").get_json()
    assert answer["input"] == {"shape": [28, 28, 1], "mean": pytest.approx(expected, abs=1e-4)}  # serving's steps
    assert answer["top"][0]["label"] in registry.card("tiny-cnn")["labels"] and len(answer["top"]) == 3
    shots = ARTIFACTS / "lab"
    shots.mkdir(parents=True, exist_ok=True)
    with live_server(app) as url, chromium() as browser:
        for lang, width, height in (("es", 1366, 900), ("en", 390, 844)):
            context = browser.new_context(viewport={"width": width, "height": height})
            outside, errors = guard_loopback(context), page_errors(context)
            page = context.new_page()
            unread = len(client.get("/api/v1/lab/alerts?limit=30").get_json()["alerts"])
            page.goto(f"{url}/learn?lang={lang}")  # any page: the navbar's lab link counts the unread alerts
            badge = page.locator('[data-nav="lab.page"] .nav-alerts:not(.d-none) [aria-hidden=true]')
            badge.wait_for(state="attached")
            assert badge.inner_text() == str(unread) and unread > 0
            if width < 992:  # a phone's navbar is collapsed: the menu button carries the count
                assert page.locator(".navbar-toggler .nav-alerts-dot").inner_text() == str(unread)
                assert page.locator(".navbar-toggler .nav-alerts-dot").is_visible() and not badge.is_visible()
                page.screenshot(path=shots / f"nav-alerts-{lang}-{width}.png")
            else:
                assert badge.is_visible()
            page.goto(f"{url}/lab?lang={lang}")
            page.wait_for_selector("main[data-state=ready]")
            page.wait_for_selector("#strip[data-state=done]")
            steps = page.locator("#strip figure").evaluate_all("nodes => nodes.map(n => [n.dataset.step, +n.dataset.mean])")
            assert [name for name, _ in steps] == ["input", "channels", "resize", "normalize"]
            assert abs(steps[-1][1] - expected) < 1e-3  # the browser's normalised pixels = models/transforms.py
            assert page.locator("#alerts li").count() >= 5 and page.locator("#alert-badge").is_visible()
            boxes = page.locator("#runs input[type=checkbox]")
            assert boxes.count() >= 5 and page.locator("#runs .badge").count() == 1  # one best run
            boxes.nth(0).check()
            page.wait_for_selector("#runs[data-state=done]")
            page.locator("#runs input[type=checkbox]").nth(1).check()
            page.locator("#compare-hint").filter(has_text="2").wait_for()
            page.wait_for_selector(".lab-chart[data-state=done]")
            assert "3" in page.locator("#sweep-summary").inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=shots / f"lab-{lang}-{width}.png", full_page=True)
            page.click("#alerts-read")  # marked read here: no count in the navbar any more
            page.wait_for_selector('[data-nav="lab.page"] .nav-alerts.d-none', state="attached")
            assert page.locator(".navbar-toggler .nav-alerts-dot").is_hidden()
            assert page.locator("#alert-badge").is_hidden()
            assert not outside and not errors, (outside, errors)
            context.close()


def test_transforms_command_shows_each_step(tmp_path):
    from PIL import Image

    result = invoke("transforms", "--index", "3", "--out", str(tmp_path / "strip.png"))
    assert result.exit_code == 0, result.output
    steps = [line.split()[0] for line in result.output.splitlines()[:5]]
    assert steps == ["input", "augment", "channels", "resize", "normalize"] and "label: trouser" in result.output
    assert Image.open(tmp_path / "strip.png").size == (5 * 112, 112)


def test_a_lab_train_job_runs_in_the_background_and_publishes(lab_dir, tmp_path, monkeypatch):
    """POST /api/v1/lab/train (admin, CSRF) → a job of kind lab-train runs `riim lab train` as a child
    process with per-stage progress, publishes and exports; its run is in the tracker the page reads."""
    from tests.conftest import ADMIN, serving_app
    from tests.support import kill_active_jobs, wait_until

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    app = serving_app({"MODELS_DIR": str(tmp_path / "store"), "LAB_DIR": str(lab_dir), "RATELIMIT_ENABLED": False})
    from app.auth import create_user

    with app.app_context():
        create_user(**ADMIN)
    client = app.test_client()
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.get("/api/v1/auth/me").json["csrf_token"]
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.post("/api/v1/auth/login", json=ADMIN).json["csrf_token"]
    try:
        assert client.post("/api/v1/lab/train", json={"width": 1000}).status_code == 400
        started = client.post("/api/v1/lab/train", json={"name": "jobcnn", "epochs": 1, "train_images": 300,
                                                          "test_images": 100, "width": 8})
        assert started.status_code == 202 and started.json["job"]["kind"] == "lab-train"
        job = wait_until(lambda: (j := client.get(started.json["url"]).json)["state"] not in ("queued", "running")
                         and j, 300, "the lab-train job did not end")
    finally:
        kill_active_jobs(app)
    assert job["state"] == "succeeded", job
    assert job["result"]["version"] == "v1" and job["stages"][0]["state"] == "done"
    assert [m["name"] for m in client.get("/api/v1/lab/models").json["models"]] == ["jobcnn"]
    runs = client.get("/api/v1/lab/runs?q=jobcnn").json["runs"]
    assert runs[0]["id"] == job["result"]["run_id"] and runs[0]["status"] == "finished"
