"""Web security: CSRF on state-changing calls, security headers with a strict CSP, per-client rate limits.

- CSRF (Flask-WTF): every POST/PUT/PATCH/DELETE needs the session's token (form field ``csrf_token`` or
  header ``X-CSRFToken``; pages read it from ``<meta name="csrf-token">``). Exempt views say why.
- Content-Security-Policy: only same-origin scripts, no inline code; ``'wasm-unsafe-eval'`` lets the
  vendored TF.js wasm backend compile its binaries.
- Rate limits (Flask-Limiter) by client address; in memory per process by default, shared by all workers
  when ``RATELIMIT_STORAGE_URI`` names a Redis server (``redis://host:6379``).
"""
from __future__ import annotations

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
