"""The `riim models` commands on a real registry, through click's runner (as a user types them)."""
from click.testing import CliRunner

from app.cli import main
from models.registry import Registry
from tests.test_registry import publish


def riim(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_list_promote_rollback_show(tmp_path):
    registry = Registry(tmp_path)
    publish(registry), publish(registry)
    where = ("--models-dir", str(tmp_path))
    assert riim("models", "list", *where).output == "pets: v1* v2\n"
    result = riim("models", "promote", "pets:v2", *where)
    assert result.exit_code == 0 and registry.current("pets") == "v2"
    assert riim("models", "list", *where).output == "pets: v1 v2*\n"
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
