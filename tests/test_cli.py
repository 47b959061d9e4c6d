"""The `riim models` commands on a real registry, through click's runner (as a user types them)."""
from click.testing import CliRunner

from cli.main import main
from models.registry import Registry
from tests.test_registry import publish


def riim(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_promote_rollback_show(tmp_path):
    registry = Registry(tmp_path)
    publish(registry), publish(registry)
    where = ("--models-dir", str(tmp_path))
    assert riim("models", "list", *where).output == "pets (image-classification): v1* v2\n"
    result = riim("models", "promote", "pets:v2", *where)
    assert result.exit_code == 0 and registry.current("pets") == "v2"
    assert riim("models", "list", *where).output == "pets (image-classification): v1 v2*\n"
    assert "rolled back to v1" in riim("models", "rollback", "pets", *where).output
    shown = riim("models", "show", "pets:v2", *where).output
    assert "pets:v2" in shown and "EfficientNet-Lite0" in shown and "model.onnx" in shown


def test_errors_are_messages_not_tracebacks(tmp_path):
    registry = Registry(tmp_path)
    publish(registry)
    where = ("--models-dir", str(tmp_path))
    for args, message in [(("promote", "pets:v7"), "no version 'v7'"),
                          (("promote", "pets"), "give NAME:VERSION"),
                          (("rollback", "pets"), "no earlier promoted version"),
                          (("show", "ghost"), "unknown model 'ghost'")]:
        result = riim("models", *args, *where)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert "no models" in riim("models", "list", "--models-dir", str(tmp_path / "empty")).output


def test_create_app_is_inert_the_start_up_work_is_run_by_commands(tmp_path, monkeypatch):
    from sqlalchemy import inspect

    from app import create_app
    from app.db import db

    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("RIIM_MODELS_DIR", str(tmp_path / "store"))
    app = create_app()
    with app.app_context():
        assert inspect(db.engine).get_table_names() == []  # building an app (a worker) migrates nothing
    assert riim("db", "upgrade").output == "database schema is up to date\n"
    with app.app_context():
        assert {"upload", "prediction", "job"} <= set(inspect(db.engine).get_table_names())
    assert riim("uploads", "check").output.startswith("uploads=0 ")
    assert riim("jobs", "check").output == "0 orphaned job(s) marked failed\n"
