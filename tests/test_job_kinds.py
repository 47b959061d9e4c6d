"""Jobs of registered kinds (app/job_kinds.py): planned `riim` stages run by the job driver in the background,
per-stage progress with curves, the result file, a failing stage, and 4xx for bad requests."""
from __future__ import annotations

import shutil

import pytest

from app import job_kinds
from app.errors import ApiError
from app.jobs import kind_stage_view
from tests.support import kill_active_jobs, wait_until
from tests.test_jobs import login
from training.progress import Progress


def _parse(options: dict) -> dict:
    for name in set(options) - {"missing"}:
        raise ApiError(400, "unknown_param", name=name)
    if not isinstance(options.get("missing", False), bool):
        raise ApiError(400, "bad_param", name="missing", value=str(options["missing"]))
    return options


# Two real commands: list the registry, then describe a version (one that does not exist when "missing").
LIST_AND_SHOW = job_kinds.JobKind(
    name="test-list-show", title={"es": "Listar y describir", "en": "List and show"}, parse=_parse,
    model=lambda options: "animals",
    stages=lambda options: [
        ("list", ["models", "list", "--models-dir", "{models_dir}"]),
        ("show", ["models", "show", "animals:v99" if options.get("missing") else "animals",
                  "--models-dir", "{models_dir}"])])


@pytest.fixture
def kind_app(tiny_registry, tmp_path, monkeypatch):
    from tests.conftest import serving_app

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    shutil.copytree(tiny_registry.root, tmp_path / "store")
    job_kinds.register(LIST_AND_SHOW)
    app = serving_app({"MODELS_DIR": str(tmp_path / "store")})
    yield app
    kill_active_jobs(app)
    job_kinds.KINDS.pop(LIST_AND_SHOW.name)


def finished(client, job_id: int) -> dict:
    def ended():
        job = client.get(f"/api/v1/jobs/{job_id}").json
        return job if job["state"] not in ("queued", "running") else None
    return wait_until(ended, 60, "the job did not end within 60 s")


def test_a_kind_runs_its_stages_in_the_background(kind_app):
    client = login(kind_app)
    response = client.post("/api/v1/jobs", json={"kind": "test-list-show", "options": {}})
    assert response.status_code == 202, response.json
    assert response.json["kind"] == "test-list-show" and response.json["project"] == "animals"
    job = finished(client, response.json["id"])
    assert job["state"] == "succeeded", job
    assert [(row["name"], row["state"]) for row in job["stages"]] == [("list", "done"), ("show", "done")]
    log = client.get(f"/api/v1/jobs/{job['id']}/log").get_data(as_text=True)
    assert "$ riim models list --models-dir" in log and "animals (image-classification): v1*" in log
    assert [j["id"] for j in client.get("/api/v1/jobs?kind=test-list-show").json["jobs"]] == [job["id"]]


def test_a_failing_stage_fails_the_job_and_says_which(kind_app):
    client = login(kind_app)
    job = finished(client, client.post("/api/v1/jobs", json={"kind": "test-list-show",
                                                             "options": {"missing": True}}).json["id"])
    assert job["state"] == "failed" and job["error"].startswith("show: riim models ended with exit code")
    assert [(row["name"], row["state"]) for row in job["stages"]] == [("list", "done"), ("show", "failed")]


@pytest.mark.parametrize("body, code", [
    ({"kind": "no-such-kind"}, "unknown_job_kind"),
    ({"kind": ["test-list-show"]}, "unknown_job_kind"),
    ({"kind": "test-list-show", "options": []}, "bad_param"),
    ({"kind": "test-list-show", "options": {"epochs": 3}}, "unknown_param"),
    ({"kind": "test-list-show", "options": {"missing": "yes"}}, "bad_param"),
])
def test_bad_kind_requests_get_400(kind_app, body, code):
    response = login(kind_app).post("/api/v1/jobs?lang=en", json=body)
    assert response.status_code == 400 and response.json["error"]["code"] == code
    assert response.json["error"]["message"] and "errors." not in response.json["error"]["message"]


def test_stage_view_reads_each_stage_progress_with_its_curves(tmp_path):
    stages = [{"name": name, "argv": [], "progress": str(job_kinds.progress_file(tmp_path, name))}
              for name in ("train", "export")]
    (tmp_path / "job.json").write_text(__import__("json").dumps({"stages": stages}))
    progress = Progress(stages[0]["progress"], bars=False)
    progress.stage("train", total=4)
    for epoch in (1, 2):
        progress.step(epoch, 4, loss=1.0 / epoch, val_loss=1.2 / epoch)
    view = kind_stage_view(tmp_path, "running")
    train, export = view["stages"]
    assert (train["state"], train["step"], train["steps"], export["state"]) == ("running", 2, 4, "pending")
    assert [point["loss"] for point in view["progress"]["history"]] == [1.0, 0.5]
    assert view["eta_seconds"] is None  # the export stage has no estimate yet
    assert [row["state"] for row in kind_stage_view(tmp_path, "cancelled")["stages"]] == ["cancelled", "skipped"]


def test_the_api_description_lists_the_registered_kinds(kind_app):
    body = kind_app.test_client().get("/api/v1/openapi.json").json["paths"]["/api/v1/jobs"]["post"]["requestBody"]
    retrain, other = body["content"]["application/json"]["schema"]["oneOf"]
    assert "test-list-show" in other["properties"]["kind"]["enum"] and "project" in retrain["required"]
