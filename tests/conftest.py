"""Shared fixtures: a registry with the real default model (built once per session), apps on temp dirs."""
from __future__ import annotations

import pytest

from app import create_app, prepare
from models.registry import Registry
from training import real_photos


@pytest.fixture(scope="session")
def photos():
    """Real photos from installed packages, by name."""
    return {photo.name: photo for photo in real_photos.cat_dog_photos() + real_photos.ood_photos()}


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


def serving_app(config: dict):
    """``create_app(config)`` then the start-up work a server does once (migrations, checks)."""
    application = create_app(config)
    prepare(application)
    return application


@pytest.fixture
def app(default_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return serving_app({"MODELS_DIR": str(default_registry.root)})


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
