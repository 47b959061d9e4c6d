"""Web security: CSRF on state-changing calls, security headers with a strict CSP, per-client rate limits.

- CSRF (Flask-WTF): every POST/PUT/PATCH/DELETE needs the session's token (form field ``csrf_token`` or
  header ``X-CSRFToken``; pages read it from ``<meta name="csrf-token">``). Exempt views say why.
- Content-Security-Policy: only same-origin scripts, no inline code; ``'wasm-unsafe-eval'`` lets the
  vendored TF.js wasm backend compile its binaries.
- Rate limits (Flask-Limiter) by client address; in memory per process by default, shared by all workers
  when ``RATELIMIT_STORAGE_URI`` names a Redis server (``redis://host:6379``).
- :func:`request_site` tells same-origin page requests from cross-site ones (``Sec-Fetch-Site``, ``Origin``).
- The session secret: given (``RIIM_SECRET_KEY``, ``instance/config.py``) or this instance's own random
  key, made once by :func:`instance_secret`.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.errors import ApiError, error_response

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}


SECRET_FILE = "secret_key"  # in the instance folder


def instance_secret(folder: str | Path) -> str:
    """This instance's secret key from ``folder/secret_key``, made on first use: 32 random bytes (hex),
    mode 600. Race-safe between processes starting together (gunicorn workers): the key is written to a
    private temporary file and hard-linked into place, which only the first process achieves (create-
    exclusive, never a half-written file); every process then reads the one file."""
    path = Path(folder) / SECRET_FILE
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-secret-")  # mode 600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # e.g. copied with a permissive umask: the key is readable only by its owner
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable key: delete it and start again (a new one is made)")
    return key


def request_site() -> str | None:
    """Where a request comes from, as the browser says: ``"same-origin"`` (a page of this server),
    ``"cross-site"`` (any other page), or None (no browser headers: curl, scripts). ``Sec-Fetch-Site`` is
    trusted first; browsers without it send ``Origin`` on every POST, compared with this server's origin
    (behind a proxy, the one PROXY_HOPS restores)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return "same-origin" if fetch_site == "same-origin" else "cross-site"
    origin = request.headers.get("Origin")
    if origin is not None:
        return "same-origin" if origin == f"{request.scheme}://{request.host}" else "cross-site"
    return None


def security_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def rate_limited(error: RateLimitExceeded):
    limit = error.limit.limit
    return error_response(ApiError(429, "rate_limited", amount=limit.amount, seconds=limit.get_expiry()))


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(security_headers)
    app.register_error_handler(CSRFError, lambda error: error_response(ApiError(400, "csrf_failed")))
    app.register_error_handler(RateLimitExceeded,
                               rate_limited)
