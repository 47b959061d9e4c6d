"""RIIM web application: ``create_app()`` builds a Flask app serving models from ONNX Runtime.

Nothing here imports TensorFlow: serving reads the registry (``models``) and runs ONNX files.
``create_app`` only wires the parts together; the one-off work before serving (migrations, the uploads
check, orphaned jobs) is :func:`prepare`, run once per start by ``riim serve``, by the gunicorn master
(never by each worker) or by the commands ``riim db upgrade``, ``riim uploads check``, ``riim jobs check``.
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import (api, auth, db, errors, i18n, inference, jobs, labelling, learn, lesson_data, lesson_models, pages,
                 params, security, storage)
from app import digits
from app import generative
from app import dl
from app import lab
from app.config import CONFIGS, env_overrides

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def create_app(config: str | dict | None = None) -> Flask:
    """Build the app. ``config``: a name from :data:`CONFIGS` (default ``$RIIM_ENV`` or development)
    or a mapping of settings applied on top of the testing config (as in the Flask tutorial)."""
    app = Flask(__name__, instance_relative_config=True, instance_path=os.environ.get("RIIM_INSTANCE_PATH"),
                template_folder=str(WEB_DIR / "templates"), static_folder=str(WEB_DIR / "static"))
    name = "testing" if isinstance(config, dict) else (config or os.environ.get("RIIM_ENV", "development"))
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    app.config.from_object(CONFIGS[name])
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(env_overrides(CONFIGS[name]))
    if isinstance(config, dict):
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = security.instance_secret(app.instance_path)
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", None)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'riim.sqlite3'}"
    if hops := app.config["PROXY_HOPS"]:  # the client address, scheme and host as the proxies saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    i18n.init_app(app)
    errors.init_app(app)
    params.init_app(app)  # JSON and multipart bodies parsed with size and depth limits
    db.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    storage.init_app(app)
    inference.init_app(app)
    labelling.init_app(app)
    jobs.init_app(app)
    learn.init_app(app)  # /learn lessons; also the navbar's has_endpoint()
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(digits.bp)
    app.register_blueprint(generative.bp)
    app.register_blueprint(lesson_models.bp)
    app.register_blueprint(lesson_data.bp)
    dl.init_app(app)  # /api/v1/dl: the time-series service (and its job kinds)
    lab.init_app(app)  # /lab and /api/v1/lab: the CNN lab (and its job kinds)
    return app


def prepare(app: Flask) -> dict:
    """Once before serving: apply migrations, check the stored uploads, fail orphaned jobs; a report."""
    with app.app_context():
        db.upgrade_schema()
        return {"uploads": storage.check(), "orphaned_jobs": jobs.check()}
