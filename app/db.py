"""SQLite through Flask-SQLAlchemy; schema changes through Flask-Migrate (``app/migrations``)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import Flask
from flask_migrate import Migrate, upgrade
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()
migrate = Migrate()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Prediction(db.Model):
    """One answer given to one image (what, by which model version, how fast)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                 default=lambda: dt.datetime.now(dt.timezone.utc))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    unknown: Mapped[bool] = mapped_column(Boolean)
    probabilities: Mapped[dict] = mapped_column(JSON)
    inference_ms: Mapped[float] = mapped_column(Float)


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _write_ahead_log)


def _write_ahead_log(connection, _record) -> None:
    """SQLite in write-ahead-log mode: readers never wait for the writer, and a commit appends to the log
    without an fsync (``synchronous=NORMAL``): still atomic and consistent after a crash of the process; a
    power cut may lose the last commits, never corrupt the database."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def upgrade_schema() -> None:
    """Apply the pending migrations (inside an app context)."""
    upgrade(directory=str(MIGRATIONS))


@click.group("db")
def db_cli():
    """The SQLite database: schema migrations."""


@db_cli.command("upgrade")
def upgrade_command():
    """Apply pending migrations (`make run` and `make serve` run this before serving)."""
    from app import create_app

    with create_app().app_context():
        upgrade_schema()
    click.echo("database schema is up to date")
