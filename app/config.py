"""Configuration classes. Values can be overridden by ``RIIM_<NAME>`` environment variables and by
``instance/config.py``; the factory applies them in that order (class → instance file → environment)."""
from __future__ import annotations

import os

from models import preprocess


class Config:
    SECRET_KEY = None  # RIIM_SECRET_KEY or instance/config.py; else the instance's own (app.security.instance_secret)
    SQLALCHEMY_DATABASE_URI = None  # default: sqlite:///<instance>/riim.sqlite3, set by the factory
    MODELS_DIR = None  # default: models/store in the repository
    DEFAULT_MODEL = "animals"
    MAX_CONTENT_LENGTH = 10 * 1024 * 1024  # bytes per request
    MAX_FORM_MEMORY_SIZE = 256 * 1024  # bytes per non-file field (> the 64 KiB chunks Werkzeug parses)
    MAX_FORM_PARTS = 64  # fields + files per multipart request
    MAX_PART_HEADER_BYTES = 4 * 1024  # headers of one multipart part (413 past it)
    IMAGE_MAX_PIXELS = preprocess.MAX_PIXELS  # width x height read from the header, checked before decoding
    IMAGE_MIN_SIDE = preprocess.MIN_SIDE  # pixels
    REQUEST_MAX_PIXELS = 40_000_000  # decoded pixels of all the images of one request (413 past it)
    JSON_MAX_BYTES = 256 * 1024  # a JSON body (413 past it)
    JSON_MAX_DEPTH = 32  # nesting of a JSON body (400 past it)
    STORE_UPLOADS = True  # keep each analysed image (a request may opt out with store=0)
    UPLOAD_RETENTION_DAYS = 30  # delete stored uploads older than this at start-up; 0 = keep forever
    UPLOAD_ORPHAN_GRACE_SECONDS = 600  # a file this young may belong to a transaction still running
    JOBS_RETENTION_DAYS = 7  # empty finished jobs' folders (image copies, work files) after this; 0 = never
    JOBS_QUEUE_URL = ""  # redis://host:6379/0 (or unix:///path): jobs wait in RQ for `riim worker`s; "" = run here
    JOBS_RETRIES = 1  # a queued job whose driver dies without finishing (killed, out of memory) runs again once
    JOBS_TIMEOUT_SECONDS = 6 * 3600  # a worker stops a job running longer than this
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"  # per process; redis://host:6379 to share limits between workers
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}  # for Redis: seconds
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True  # Redis unreachable: per-process limits until it is back
    RATELIMIT_HEADERS_ENABLED = True
    RATE_LIMIT_PREDICT = "120 per minute"  # per client address, on /api/v1/predict
    RATE_LIMIT_LOGIN = "10 per minute"
    PROXY_HOPS = 0  # reverse proxies in front whose X-Forwarded-For/-Proto/-Host are trusted (docs/security.md)
    MAX_IMAGES_PER_REQUEST = 16
    ORT_THREADS = 0  # 0 = let ONNX Runtime decide
    DEFAULT_PRECISION = "auto"  # ONNX served: "fp32", "int8", or "auto": int8 when its decisions match fp32's
    MODEL_PRECISION = {}  # per model name, e.g. {"animals": "fp32"} in instance/config.py (models.card.served_format)
    JSON_SORT_KEYS = False


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    TESTING = True


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = True  # behind HTTPS; RIIM_SESSION_COOKIE_SECURE=0 for a plain-HTTP classroom LAN


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
