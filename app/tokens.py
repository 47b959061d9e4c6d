"""API tokens, and who may store the images sent to ``POST /api/v1/predict``.

Any web page a student opens can POST to the CSRF-exempt predict API, so storage (which fills the
teacher's labelling queue) is decided per request by :func:`may_store_uploads`: never for a cross-site
request; always for a same-origin page (the Analyze page); for scripts and curl only with a logged-in
session or an API token. An admin makes tokens on the server::

    riim tokens create notebook        # prints the token once
    curl -H "Authorization: Bearer riim_…" -F image=@cat.png http://host:5000/api/v1/predict
    riim tokens list | riim tokens revoke notebook

Only the token's SHA-256 is stored: a token is 32 random bytes, so a slow password hash adds nothing.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

import click
from flask import request
from sqlalchemy import DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from app.auth import current_user
from app.db import db
from app.errors import ApiError
from app.security import request_site

PREFIX = "riim_"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
BEARER = re.compile(rf"Bearer ({re.escape(PREFIX)}[A-Za-z0-9_-]{{43}})")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ApiToken(db.Model):
    """A named token an admin created for a script; only its SHA-256 is kept."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_used: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name: str) -> str:
    """A new token called ``name`` (committed); the clear token is returned once and never stored.
    Raises ``ValueError`` for a bad or taken name."""
    if not NAME.fullmatch(name):
        raise ValueError("name: 1-64 characters, letters, digits, '_', '.' or '-'")
    if db.session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise ValueError(f"token {name!r} already exists")
    token = PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(name=name, token_sha256=_digest(token)))
    db.session.commit()
    return token


def revoke_token(name: str) -> bool:
    """Delete the token ``name``; False if there is none."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        return False
    db.session.delete(token)
    db.session.commit()
    return True


def request_token() -> ApiToken | None:
    """The token of this request's ``Authorization: Bearer`` header (its ``last_used`` updated, committed
    with the request's work); None without the header; 401 ``bad_token`` for a malformed, unknown or
    revoked token."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    match = BEARER.fullmatch(header.strip())
    token = match and db.session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(match.group(1))))
    if not token:
        raise ApiError(401, "bad_token")
    token.last_used = _now()
    return token


def may_store_uploads() -> bool:
    """Whether this request may keep its images: never cross-site; a same-origin page may; a script only
    with a logged-in session or a valid API token (a bad token is a 401 whatever is asked)."""
    token = request_token()
    site = request_site()
    if site == "cross-site":
        return False
    return site == "same-origin" or token is not None or current_user() is not None


@click.group("tokens")
def tokens_cli():
    """API tokens that let scripts store their uploads (Authorization: Bearer …)."""


def _app_context():
    from app import create_app

    return create_app().app_context()


@tokens_cli.command("create")
@click.argument("name")
def create_command(name):
    """Create the token NAME and print it (only this once)."""
    with _app_context():
        try:
            token = create_token(name)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"token {name} created; it is shown only now, keep it secret:\n{token}\n"
               f"use: curl -H 'Authorization: Bearer {token}' -F image=@photo.jpg …/api/v1/predict")


@tokens_cli.command("list")
def list_command():
    """Every token: name, created, last used (never the token itself)."""
    with _app_context():
        for token in db.session.scalars(select(ApiToken).order_by(ApiToken.name)):
            used = token.last_used.isoformat(timespec="seconds") if token.last_used else "never"
            click.echo(f"{token.name}  created {token.created.isoformat(timespec='seconds')}  last used {used}")


@tokens_cli.command("revoke")
@click.argument("name")
def revoke_command(name):
    """Delete the token NAME: requests that send it are refused (401) from now on."""
    with _app_context():
        if not revoke_token(name):
            raise click.ClickException(f"no token {name!r}")
    click.echo(f"token {name} revoked")
