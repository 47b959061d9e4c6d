"""The layer rule (docs/design.md): every import of every module, including imports inside functions,
checked against the arrows allowed between the packages."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("models", "app", "training", "export", "cli")
TENSORFLOW = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx", "tensorflowjs"}
# What each layer may import besides the standard library and its own package.
ALLOWED = {
    "models": {"numpy", "PIL", "jsonschema", "yaml"},
    "app": {"models", "numpy", "PIL", "jsonschema", "yaml", "markdown_it", "flask", "flask_sqlalchemy", "flask_migrate",
            "flask_wtf", "flask_limiter", "werkzeug", "sqlalchemy", "alembic", "onnxruntime", "click", "psutil",
            "limits", "gunicorn", "redis", "rq",  # the job queue (app/jobs.py, JOBS_QUEUE_URL)
            # only app/lesson_data.py, imported inside its endpoints: TF-free, it runs the training recipe
            # (models/augment_recipe.py) on the student's image and answers 503 on a serving-only install
            "albumentations"},
    "training": None,  # anything but the forbidden arrows below
    "export": None,
    "cli": None,
}
FORBIDDEN = {"training": {"app", "export", "cli"}, "export": {"app", "cli"}, "app": {"training", "export", "cli"},
             "models": {"app", "training", "export", "cli"}}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in ``path``, wherever it appears."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(root: Path = REPO) -> list[str]:
    problems = []
    stdlib = sys.stdlib_module_names
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            for line, module in imports(path):
                where = f"{path.relative_to(root)}:{line} imports {module}"
                if module in FORBIDDEN.get(layer, ()) or (layer in ("models", "app") and module in TENSORFLOW):
                    problems.append(where)
                elif ALLOWED[layer] is not None and module not in stdlib | ALLOWED[layer] | {layer, "__future__"}:
                    problems.append(where)
    return problems


def test_layers_import_only_downwards():
    assert violations() == []


@pytest.mark.parametrize("layer, line", [
    ("app", "from training import config"), ("app", "import tensorflow as tf"), ("app", "from sklearn import metrics"),
    ("training", "from app import anomaly"), ("training", "from export.onnx_export import keras_to_onnx"),
    ("export", "from app.inference import model_cache"), ("models", "from app import inference"),
    ("models", "import onnxruntime"),
])
def test_a_forbidden_import_is_caught_even_inside_a_function(tmp_path, layer, line):
    for name in LAYERS:
        (tmp_path / name).mkdir()
    (tmp_path / layer / "bad.py").write_text(f"def later():\n    {line}\n")
    assert violations(tmp_path) == [f"{layer}/bad.py:2 imports {line.split()[1].split('.')[0]}"]
