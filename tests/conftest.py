"""Shared fixtures and the two test tiers.

Registries: ``tiny_registry`` holds a small ONNX model made without TensorFlow (tests/tiny_model.py) for
tests that do not depend on what a real network sees; ``default_registry``, ``trained_registry`` and
``exported_registry`` hold real models built with TensorFlow once per session. ``app`` serves
``serving_registry``: the real default model, unless a module overrides it with ``tiny_registry``.

Tiers: every test that needs TensorFlow gets the ``tensorflow`` marker here (a fixture builds a real
model, or the test or its module imports TensorFlow); tests that run it in a child process carry the
marker themselves. ``make test-fast`` runs ``-m "not tensorflow"``: then modules that import TensorFlow
are not even collected, and the first test that imports it anyway fails.
"""
from __future__ import annotations

import ast
import functools
import inspect
import itertools
import re
import sys
import textwrap
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from app import create_app, prepare
from models.registry import Registry
from tests import tiny_model
from training import real_photos

REPO = Path(__file__).resolve().parent.parent
TENSORFLOW_PACKAGES = {"tensorflow", "tf_keras", "keras", "tensorflowjs", "tf2onnx", "tensorflow_model_optimization"}
# Fixtures that build models with TensorFlow through cli.pipeline (imported there only inside functions),
# and trained_data, whose only use is TensorFlow training.
TENSORFLOW_FIXTURES = {"default_registry", "trained_registry", "exported_registry", "trained_data"}
FAST = pytest.StashKey[bool]()  # this run deselects every test marked tensorflow
TENSORFLOW_BEFORE = pytest.StashKey[bool]()
NOT_COLLECTED = pytest.StashKey[list]()


# --- the tiers -------------------------------------------------------------------------------------

def imported_modules(tree: ast.AST, module_level: bool) -> set[str]:
    """Absolute module names imported in ``tree`` (``from a import b`` also names ``a.b``); with
    ``module_level``, function bodies (which run later, if at all) are skipped."""
    found, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


def module_file(name: str) -> Path | None:
    """The repository file of module ``name`` (None for third-party modules and names that are not modules)."""
    base = REPO.joinpath(*name.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


@functools.cache
def imports_tensorflow(name: str) -> bool:
    """Whether ``import name`` imports TensorFlow: followed through the repository's module-level imports
    (and parent packages)."""
    seen, pending = set(), [name]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        if module.split(".")[0] in TENSORFLOW_PACKAGES:
            return True
        parts = module.split(".")
        pending += [".".join(parts[:end]) for end in range(1, len(parts))]
        path = module_file(module)
        if path is not None:
            pending += imported_modules(ast.parse(path.read_text()), module_level=True)
    return False


@functools.cache
def function_imports_tensorflow(function) -> bool:
    """Whether the body of a test or fixture function of this repository imports a module that imports
    TensorFlow."""
    function = inspect.unwrap(function)
    if not Path(inspect.getsourcefile(function) or "").resolve().is_relative_to(REPO):
        return False  # pytest's own fixtures
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return any(imports_tensorflow(module) for module in imported_modules(tree, module_level=False))


def needs_tensorflow(item: pytest.Function) -> bool:
    definitions = item._fixtureinfo.name2fixturedefs
    return (imports_tensorflow(item.module.__name__) or function_imports_tensorflow(item.function)
            or any(name in TENSORFLOW_FIXTURES or any(function_imports_tensorflow(d.func) for d in definitions.get(name, ()))
                   for name in item.fixturenames))


def deselects_tensorflow(markexpr: str) -> bool:
    """Whether ``-m markexpr`` deselects every test marked ``tensorflow``, whatever its other markers."""
    if not markexpr:
        return False
    expression = Expression.compile(markexpr)
    others = sorted(set(re.findall(r"[\w.+:\[\]-]+", markexpr)) - {"and", "or", "not", "tensorflow"})
    return not any(expression.evaluate(lambda name, chosen=chosen, **kwargs: name == "tensorflow" or name in chosen)
                   for size in range(len(others) + 1) for chosen in map(set, itertools.combinations(others, size)))


def tensorflow_loaded() -> bool:
    return any(name in sys.modules for name in ("tensorflow", "tf_keras"))


def pytest_configure(config):
    config.stash[FAST] = deselects_tensorflow(config.getoption("markexpr"))
    config.stash[NOT_COLLECTED] = []


def pytest_ignore_collect(collection_path: Path, config):
    """In the fast tier, test modules that import TensorFlow are not imported at all."""
    if config.stash[FAST] and collection_path.suffix == ".py" and collection_path.parent == REPO / "tests":
        if imports_tensorflow(f"tests.{collection_path.stem}"):
            if collection_path.name not in config.stash[NOT_COLLECTED]:
                config.stash[NOT_COLLECTED].append(collection_path.name)
            return True
    return None


def pytest_report_collectionfinish(config):
    if config.stash[FAST]:
        return f"fast tier: not collected (they import TensorFlow): {', '.join(config.stash[NOT_COLLECTED]) or 'none'}"
    return None


@pytest.hookimpl(tryfirst=True)  # before -m deselects by markers
def pytest_collection_modifyitems(items):
    for item in items:
        if isinstance(item, pytest.Function) and needs_tensorflow(item):
            item.add_marker(pytest.mark.tensorflow)


def pytest_collection_finish(session):
    if session.config.stash[FAST] and tensorflow_loaded():
        raise pytest.UsageError("collecting the fast tier imported TensorFlow")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[TENSORFLOW_BEFORE] = tensorflow_loaded()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In the fast tier, the test during which TensorFlow was first imported fails at teardown."""
    report = yield
    if (call.when == "teardown" and item.config.stash[FAST] and not item.stash.get(TENSORFLOW_BEFORE, True)
            and tensorflow_loaded()):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} imported TensorFlow in the fast tier: mark it @pytest.mark.tensorflow "
                           "or add its fixture to TENSORFLOW_FIXTURES in tests/conftest.py")
    return report


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def photos():
    """Real photos from installed packages, by name."""
    return {photo.name: photo for photo in real_photos.cat_dog_photos() + real_photos.ood_photos()}


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory):
    """A registry whose current "animals" is the tiny ONNX model of tests/tiny_model.py (no TensorFlow)."""
    registry = Registry(tmp_path_factory.mktemp("tiny-registry"))
    tiny_model.publish(registry)
    return registry


@pytest.fixture(scope="session")
def default_registry(tmp_path_factory, photos):
    """A registry holding the real default "animals" model (ImageNet weights → ONNX), built once."""
    from cli import pipeline

    registry = Registry(tmp_path_factory.mktemp("registry"))
    pipeline.build_default(registry, check_images=[photos["skimage/chelsea"].image, photos["skimage/coffee"].image],
                           full=False)
    return registry


TRAINED_CLASSES = ("bag", "sneaker", "trouser")


@pytest.fixture(scope="session")
def trained_data(tmp_path_factory):
    """A real image folder: Fashion-MNIST (Debian dataset-fashion-mnist) ``bag/ sneaker/ trouser/``, 20 PNGs
    (28×28 grey) each, written by :func:`training.importers.fashion_mnist`."""
    from training import importers

    return importers.fashion_mnist(tmp_path_factory.mktemp("trained-data") / "fashion", 20, TRAINED_CLASSES)


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory, trained_data):
    """(registry, name): a tiny REAL fine-tuned model, trained once per session (~20 s) on ``trained_data``.

    Head-only (frozen EfficientNet-Lite0 + Dropout → Dense softmax) at 96², published as ``fashion:v1``
    (current) by :func:`cli.pipeline.train`. Card: ``labels`` = ["bag", "sneaker", "trouser"],
    ``input`` = backbone.input_spec(96), ``unknown_policy`` max_probability_below 0.5,
    ``outputs`` probabilities / imagenet_probabilities / embedding / feature_map, ``tags`` (ImageNet top-5),
    ``training`` (config, dataset fingerprint, split hashes), ``metrics`` (test, validation, curves,
    diagnosis, 3-fold ``crossval``). Files: ``onnx``, ``keras``, ``head`` (head.npz: ``kernel`` (1280, 3),
    ``bias`` (3,)), ``imagenet_labels``, ``curves`` (PNG).
    """
    from cli import pipeline
    from models import training_config as config

    registry = Registry(tmp_path_factory.mktemp("trained-registry"))
    settings = config.from_dict({"input_size": 96, "head": {"epochs": 20}, "augment": {"copies": 1},
                                 "crossval": {"folds": 3}})
    pipeline.train(registry, trained_data, "fashion", settings)
    return registry, "fashion"


@pytest.fixture(scope="session")
def exported_registry(tmp_path_factory, default_registry):
    """A copy of ``default_registry`` whose "animals" version has every export format and a parity report
    (`riim export`, ~1.5 min once per session)."""
    import shutil

    from export.exporter import export_version

    registry = Registry(tmp_path_factory.mktemp("exported") / "store")
    shutil.copytree(default_registry.root, registry.root)
    export_version(registry, "animals", repeats=3, log=lambda message: None)
    return registry


@pytest.fixture(scope="session")
def calibrated_registry(tmp_path_factory, exported_registry):
    """A copy of ``exported_registry`` calibrated with `riim calibrate animals --copies 2` (the command a user
    types), once per session: its card has the OOD rule, the browser files and the parity report."""
    import shutil

    from click.testing import CliRunner

    from cli.main import main

    root = tmp_path_factory.mktemp("calibrated") / "store"
    shutil.copytree(exported_registry.root, root)
    result = CliRunner().invoke(main, ["calibrate", "animals", "--copies", "2", "--models-dir", str(root)])
    assert result.exit_code == 0, result.output
    return Registry(root)


def serving_app(config: dict):
    """``create_app(config)`` then the start-up work a server does once (migrations, checks)."""
    application = create_app(config)
    prepare(application)
    return application


@pytest.fixture
def serving_registry(default_registry):
    """The registry ``app`` serves; a module whose tests do not depend on what the network sees overrides
    this fixture to return ``tiny_registry``."""
    return default_registry


@pytest.fixture
def app(serving_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return serving_app({"MODELS_DIR": str(serving_registry.root)})


@pytest.fixture
def client(app):
    return app.test_client()


ADMIN = {"username": "admin", "password": "admin-password-1"}


@pytest.fixture
def admin_client(app):
    """A client logged in as an admin (``ADMIN``) that sends its session's CSRF token with every request."""
    from app.auth import create_user

    with app.app_context():
        create_user(**ADMIN)
    client = app.test_client()
    client.environ_base["HTTP_X_CSRFTOKEN"] = client.get("/api/v1/auth/me").json["csrf_token"]
    response = client.post("/api/v1/auth/login", json=ADMIN)
    assert response.status_code == 200, response.json
    client.environ_base["HTTP_X_CSRFTOKEN"] = response.json["csrf_token"]
    return client
