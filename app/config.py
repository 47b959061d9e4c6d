"""Configuration classes. Values can be overridden by ``RIIM_<NAME>`` environment variables and by
``instance/config.py``; the factory applies them in that order (class → instance file → environment)."""
from __future__ import annotations

import os


class Config:
    SECRET_KEY = "dev-only-not-secret"
    SQLALCHEMY_DATABASE_URI = None  # default: sqlite:///<instance>/riim.sqlite3, set by the factory
    MODELS_DIR = None  # default: models/store in the repository
    DEFAULT_MODEL = "animals"
    MAX_CONTENT_LENGTH = 10 * 1024 * 1024  # bytes per request
    MAX_IMAGES_PER_REQUEST = 16
    ORT_THREADS = 0  # 0 = let ONNX Runtime decide
    AUTO_MIGRATE = True  # apply database migrations when the app starts
    JSON_SORT_KEYS = False


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    TESTING = True


class ProductionConfig(Config):
    SECRET_KEY = None  # must come from the environment or the instance folder


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}


def env_overrides(config_class: type) -> dict:
    """``RIIM_<NAME>`` environment variables for the settings ``config_class`` defines, typed like them."""
    overrides = {}
    for name in dir(config_class):
        if not name.isupper() or f"RIIM_{name}" not in os.environ:
            continue
        raw, default = os.environ[f"RIIM_{name}"], getattr(config_class, name)
        if isinstance(default, bool):
            overrides[name] = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            overrides[name] = int(raw)
        else:
            overrides[name] = raw
    return overrides
