"""Shared fixtures: a registry with the real default model (built once per session), apps on temp dirs."""
from __future__ import annotations

import pytest

from app import create_app
from models.registry import Registry
from training import real_photos


@pytest.fixture(scope="session")
def photos():
    """Real photos from installed packages, by name."""
    return {photo.name: photo for photo in real_photos.cat_dog_photos() + real_photos.ood_photos()}


@pytest.fixture(scope="session")
def default_registry(tmp_path_factory, photos):
    """A registry holding the real default "animals" model (ImageNet weights → ONNX), built once."""
    from training import default_model

    registry = Registry(tmp_path_factory.mktemp("registry"))
    default_model.build(registry, check_images=[photos["skimage/chelsea"].image, photos["skimage/coffee"].image])
    return registry


@pytest.fixture
def app(default_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RIIM_INSTANCE_PATH", str(tmp_path / "instance"))
    return create_app({"MODELS_DIR": str(default_registry.root)})


@pytest.fixture
def client(app):
    return app.test_client()
