"""Accounts for admin actions: hashed passwords, a session login and the ``admin_required`` decorator.

Admin actions (labelling, training, promote/rollback, deleting uploads) are decorated with
:func:`admin_required`; anything else stays public. Accounts are made with ``riim users create NAME``.
Passwords are stored only as Werkzeug (scrypt) hashes.

    from app.auth import admin_required

    @bp.post("/models/<name>/promote")
    @admin_required          # 401 JSON without a login, 403 JSON for a non-admin account
    def promote(name): ...

Calls from pages carry the session cookie, so they also need the CSRF token (header ``X-CSRFToken``,
read from ``<meta name="csrf-token">`` or from ``GET /api/v1/auth/me``); see :mod:`app.security`.
"""
from __future__ import annotations

import datetime as dt
import functools
import re

import click
from flask import Blueprint, Flask, current_app, g, jsonify, request, session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.db import db
from app.errors import ApiError
from app.security import limiter

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,64}")
MIN_PASSWORD = 8


class User(db.Model):
    """An account that may log in; ``is_admin`` accounts may run admin actions."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                 default=lambda: dt.datetime.now(dt.timezone.utc))

    def as_json(self) -> dict:
        return {"username": self.username, "is_admin": self.is_admin}


def create_user(username: str, password: str, is_admin: bool = True) -> User:
    """Add an account (committed). Raises ``ValueError`` for a bad or taken name or a short password."""
    if not USERNAME.fullmatch(username):
        raise ValueError("username: 3-64 characters, letters, digits, '_', '.' or '-'")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: at least {MIN_PASSWORD} characters")
    if db.session.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password), is_admin=is_admin)
    db.session.add(user)
    db.session.commit()
    return user


def current_user() -> User | None:
    """The logged-in account of this request, or None."""
    if "riim_user" not in g:
        user_id = session.get("user_id")
        g.riim_user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    return g.riim_user


def admin_required(view):
    """Allow ``view`` only to a logged-in admin: 401 ``login_required`` / 403 ``admin_only`` JSON otherwise."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            raise ApiError(401, "login_required")
        if not user.is_admin:
            raise ApiError(403, "admin_only")
        return view(*args, **kwargs)

    return wrapped


def _credentials() -> tuple[str, str]:
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict):  # a JSON list or scalar
        data = {}
    values = []
    for field in ("username", "password"):
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise ApiError(400, "missing_field", field=field)
        values.append(value)
    return values[0], values[1]


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the name is unknown, so both failures take the same time."""
    return generate_password_hash("riim-dummy-password")


@bp.post("/login")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"])
def login():
    """Log in with ``username`` + ``password`` (JSON or form). Answers the user and a fresh CSRF token."""
    username, password = _credentials()
    user = db.session.scalar(select(User).where(User.username == username)) if len(username) <= 64 else None
    valid = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is None or not valid:
        raise ApiError(401, "bad_credentials")
    session.clear()  # a new session on login (no fixation)
    session["user_id"] = user.id
    g.riim_user = user
    return jsonify(user=user.as_json(), csrf_token=generate_csrf())


@bp.post("/logout")
def logout():
    session.clear()
    return jsonify(user=None, csrf_token=generate_csrf())


@bp.get("/me")
def me():
    """Who is logged in (``user`` is null if nobody) and the CSRF token for state-changing calls."""
    user = current_user()
    return jsonify(user=user.as_json() if user else None, csrf_token=generate_csrf())


@click.group("users")
def users_cli():
    """Accounts for admin actions (labelling, training, promote/rollback, delete)."""


@users_cli.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="RIIM_NEW_PASSWORD", help="Asked for if not given (never echoed).")
@click.option("--admin/--no-admin", default=True, show_default=True, help="May run admin actions.")
def create_command(username, password, admin):
    """Create the account USERNAME (password stored as a scrypt hash)."""
    from app import create_app

    with create_app().app_context():
        try:
            create_user(username, password, is_admin=admin)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"user {username} created ({'admin' if admin else 'no admin rights'})")


@users_cli.command("list")
def list_command():
    """Every account and whether it is an admin."""
    from app import create_app

    with create_app().app_context():
        for user in db.session.scalars(select(User).order_by(User.username)):
            click.echo(f"{user.username}{'  (admin)' if user.is_admin else ''}")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
