"""Training jobs end to end: real uploads labelled through the API → `riim train` + `riim export` in a
background process group → held-out before/after → served; cancel, kill -9 and web restart."""
from __future__ import annotations

import io
import os
import shutil
import signal

import pytest

from app.jobs import ACTIVE, more_needed
from cli.job_driver import better
from models.metrics import summary, wilson_interval
from models.registry import Registry
from tests.conftest import ADMIN, serving_app
from tests.support import kill_active_jobs, wait_until
from tests.test_labelling import fashion_pngs, upload

API = "/api/v1/labelling"
TINY = {"input_size": 96, "head": {"epochs": 30}, "augment": {"copies": 1},
        "data": {"min_per_class": 4, "validation_fraction": 0.2, "test_fraction": 0.0}}


def test_metrics_and_the_better_rule():
    metrics = summary(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"], digits=None)
    assert metrics["accuracy"] == 0.75
    assert metrics["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    old, new = {"accuracy": 0.5, "macro_f1": 0.5}, {"images": 4, "accuracy": 0.75, "macro_f1": 0.4}
    assert better({"new": new, "parent": old}) and not better({"new": old | {"images": 4}, "parent": new})
    assert not better({"new": new, "parent": old, "meaningful": False})  # too few held-out images to tell


def test_wilson_interval_against_known_values():
    """95 % Wilson score intervals (Wilson 1927; e.g. Newcombe 1998, Table I: 81/263 → 0.2553–0.3662)."""
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)  # 100 % on 10 images: not certain
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_label_more_counts_the_held_out_images():
    """Every 5th labelled image of a class is held out: 5 training images need 6 labelled."""
    assert more_needed(0, 0, 5, 5, holdout=False) == 6
    assert more_needed(5, 4, 5, 5, holdout=False) == 1  # the 6th is a training image
    assert more_needed(4, 4, 5, 5, holdout=False) == 2  # the 5th is held out, the 6th trains
    assert more_needed(6, 1, 5, 5, holdout=True) == 19  # held-out images come at 10, 15, 20, 25
    assert more_needed(6, 5, 5, 0, holdout=False) == 0 and more_needed(6, 0, 1, 0, holdout=True) is None


@pytest.fixture
def job_app(tiny_registry, tmp_path, monkeypatch):
    """An app on its own registry copy (jobs publish into it), holding out every 4th labelled image. The
    uploads are analysed by the tiny model (tests/tiny_model.py); jobs fine-tune EfficientNet-Lite0, in a
    child process: tests that run one are marked ``tensorflow``."""
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    shutil.copytree(tiny_registry.root, tmp_path / "store")
    settings = {"MODELS_DIR": str(tmp_path / "store"), "LABEL_HOLDOUT_EVERY": 4, "JOBS_TRAIN_CONFIG": TINY,
                "JOBS_EXPORT_REPEATS": 3}
    app = serving_app(settings)
    app.settings = settings
    yield app
    kill_active_jobs(app)


def login(app):
    from app.auth import create_user

    with app.app_context():
        from app.auth import User
        from app.db import db

        if db.session.query(User).count() == 0:
            create_user(**ADMIN)
    client = app.test_client()
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.get("/api/v1/auth/me").json["csrf_token"]
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.post("/api/v1/auth/login", json=ADMIN).json["csrf_token"]
    return client


def label_project(client, name: str, per_class: int, offset: int = 0, classes=("trouser", "bag", "sneaker")):
    if client.get(f"{API}/projects").json["projects"] == []:
        assert client.post(f"{API}/projects", json={"name": name, "classes": list(classes)}).status_code == 201
    items = []
    for label in classes:
        items += [{"sha256": sha, "label": label} for sha in upload(client, fashion_pngs(label, per_class, offset))]
    assert client.post(f"{API}/projects/{name}/labels", json={"items": items}).status_code == 200


def wait(client, job_id: int, until, timeout: float = 300) -> dict:
    """The job once ``until(job)`` holds; fails with its state and log after ``timeout`` seconds."""
    last = {}

    def seen():
        last["job"] = client.get(f"/api/v1/jobs/{job_id}").json
        return last["job"] if until(last["job"]) else None

    return wait_until(seen, timeout, lambda: f"job {job_id} is {last['job']['state']}:\n"
                      + client.get(f"/api/v1/jobs/{job_id}/log").get_data(as_text=True)[-3000:], interval=0.5)


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pid: int, timeout: float = 20) -> None:
    wait_until(lambda: not group_alive(pid), timeout, f"process group {pid} is still running")


def test_not_enough_labels_and_bad_config_are_4xx(job_app):
    client = login(job_app)
    label_project(client, "shop", 2)
    response = client.post("/api/v1/jobs?lang=en", json={"project": "shop"})
    assert response.status_code == 409 and response.json["error"]["code"] == "not_enough_labels"
    # 2 labelled per class, every 4th held out, 4 training images needed: 3 more of two of the classes
    assert "Label 3 more images of 'bag', 3 more images of 'sneaker'." in response.json["error"]["message"]
    response = client.post("/api/v1/jobs", json={"project": "shop", "config": {"head": {"epochs": 0}}})
    assert response.json["error"]["code"] == "bad_config"
    cluster = {"distribute": {"cluster": ["127.0.0.1:2222", "127.0.0.1:2223"]}}  # peers nobody would start
    response = client.post("/api/v1/jobs", json={"project": "shop", "config": cluster})
    assert response.json["error"]["code"] == "bad_config" and "distribute.cluster" in response.json["error"]["message"]
    assert client.post("/api/v1/jobs", json={"project": "nope"}).json["error"]["code"] == "unknown_project"
    assert client.get("/api/v1/jobs/999").status_code == 404
    assert client.get("/api/v1/jobs").json["jobs"] == []


@pytest.mark.slow
@pytest.mark.tensorflow
def test_label_train_export_serve_then_retrain_across_a_web_restart(job_app, tmp_path):
    """Acceptance: 3 classes × 8 real images labelled → v1 trained, exported (TF.js), promoted, served and
    right on new images; 4 more per class → v2 trained while the web app restarts, evaluated next to v1 on
    the same held-out images, promoted on confirmation, rolled back in one call."""
    client = login(job_app)
    label_project(client, "shop", 8)
    job = client.post("/api/v1/jobs", json={"project": "shop"})
    assert job.status_code == 202, job.json
    assert client.post("/api/v1/jobs", json={"project": "shop"}).json["error"]["code"] == "job_running"
    seen = wait(client, job.json["id"], lambda j: (j["progress"] or {}).get("epoch") or j["state"] not in ACTIVE)
    assert seen["state"] in ("running", "succeeded") and seen["stage"] in (
        "train", "export", "calibrate", "evaluate", "promote", "done")
    job = wait(client, job.json["id"], lambda j: j["state"] not in ("queued", "running"))
    assert job["state"] == "succeeded", job["error"]
    assert (job["version"], job["promoted"], job["parent_version"]) == ("v1", True, None)
    registry = Registry(job_app.settings["MODELS_DIR"])
    card = registry.card("shop", "v1")
    assert card["labels"] == ["bag", "sneaker", "trouser"] and {"tfjs", "onnx_int8"} <= set(card["files"])
    assert card["metrics"]["heldout"]["images"] == 6 == len(job["result"]["images"])  # 2 per class, never trained
    assert "anomaly" in card and "ood" in card["unknown_policy"] and job["result"]["calibration"]["calibrated"]
    assert [(stage["name"], stage["state"]) for stage in job["stages"]] == [
        (name, "done") for name in ("features", "head", "publish", "export", "calibrate", "evaluate")]
    assert job["result"]["meaningful"] is False and job["result"]["too_small"] == {"bag": 2, "sneaker": 2, "trouser": 2}
    assert job["result"]["new"]["accuracy_interval"][0] <= job["result"]["new"]["accuracy"]
    assert job["result"]["new"]["accuracy"] >= 0.5  # 6 training images per class; chance is 1/3
    # served: new real images (Fashion-MNIST test split) are answered with the labelled classes
    right = 0
    for label in ("trouser", "bag", "sneaker"):
        files = [(io.BytesIO(data), f"{label}.png") for data in fashion_pngs(label, 3, source="test")]
        answer = client.post("/api/v1/predict?model=shop&store=0", data={"image": files},
                             content_type="multipart/form-data").json
        assert answer["model"]["version"] == "v1"
        right += sum(result["label"] == label for result in answer["results"])
    assert right >= 7
    assert client.get("/api/v1/models/shop/versions/v1/files/tfjs/model.json").status_code == 200

    # retrain with 4 more images per class, without export; the web app restarts while the job runs
    job_app.config["JOBS_EXPORT"] = False
    label_project(client, "shop", 4, offset=8)
    second = client.post("/api/v1/jobs", json={"project": "shop"}).json
    assert second["parent_version"] == "v1"
    restarted = serving_app(job_app.settings)  # a new web process: same database, same registry
    client = login(restarted)
    assert client.get(f"/api/v1/jobs/{second['id']}").json["state"] in ("queued", "running")
    second = wait(client, second["id"], lambda j: j["state"] not in ("queued", "running"))
    assert second["state"] == "succeeded", second["error"]
    result = second["result"]
    assert result["parent"]["version"] == "v1" and result["new"]["version"] == "v2"
    assert set(job["result"]["images"]) < set(result["images"])  # v1's held-out images stay held out
    assert result["delta"]["accuracy"] == pytest.approx(result["new"]["accuracy"] - result["parent"]["accuracy"])
    assert set(result["delta"]["per_class"]) == {"bag", "sneaker", "trouser"}
    assert registry.card("shop", "v2")["metrics"]["heldout"]["delta"] == result["delta"]
    assert not second["promoted"] and registry.current("shop") == "v1"  # waits for the user's confirmation
    assert client.post("/api/v1/models/shop/promote", json={"version": "v2"}).json["version"] == "v2"
    assert client.post("/api/v1/models/shop/rollback").json["version"] == "v1"


def start_and_wait_for_training(client) -> dict:
    label_project(client, "shop", 5)
    job = client.post("/api/v1/jobs", json={"project": "shop"}).json
    return wait(client, job["id"], lambda j: j["progress"] is not None or j["state"] not in ACTIVE, timeout=120)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_cancel_mid_run_kills_the_group_and_publishes_nothing(job_app):
    client = login(job_app)
    job = start_and_wait_for_training(client)
    assert job["state"] == "running"
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel").json
    assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled by admin"
    wait_group_gone(job_pid(job_app, job["id"]))
    assert "shop" not in Registry(job_app.settings["MODELS_DIR"]).models() or \
        Registry(job_app.settings["MODELS_DIR"]).versions("shop") == []
    assert client.get(f"/api/v1/jobs/{job['id']}").json["state"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json["error"]["code"] == "job_finished"


@pytest.mark.slow
@pytest.mark.tensorflow
def test_kill_9_of_the_job_process_marks_it_failed_and_frees_the_slot(job_app):
    client = login(job_app)
    job = start_and_wait_for_training(client)
    pid = job_pid(job_app, job["id"])
    os.kill(pid, signal.SIGKILL)  # the driver dies; its `riim train` child is still running
    failed = wait(client, job["id"], lambda j: j["state"] not in ACTIVE, timeout=30)
    assert failed["state"] == "failed" and "gone" in failed["error"]
    wait_group_gone(pid)  # the orphaned trainer was killed too: nothing is left that could publish
    assert "shop" not in Registry(job_app.settings["MODELS_DIR"]).models() or \
        Registry(job_app.settings["MODELS_DIR"]).versions("shop") == []
    # a new web process finds nothing running, and the slot is free again
    restarted = login(serving_app(job_app.settings))
    assert restarted.get(f"/api/v1/jobs/{job['id']}").json["state"] == "failed"
    again = restarted.post("/api/v1/jobs", json={"project": "shop", "config": {"head": {"epochs": 1}}})
    assert again.status_code == 202
    assert restarted.post(f"/api/v1/jobs/{again.json['id']}/cancel").json["state"] == "cancelled"
    wait_group_gone(job_pid(job_app, again.json["id"]))


def job_pid(app, job_id: int) -> int:
    from app.db import db
    from app.jobs import Job

    with app.app_context():
        return db.session.get(Job, job_id).pid
