"""JSON errors for every 4xx/5xx: ``{"error": {"status", "code", "message"}}`` in the client's language."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.i18n import translate

_CODES = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """An error the client caused (or a model we cannot serve), with a catalogue message key."""

    def __init__(self, status: int, code: str, **values):
        super().__init__(code)
        self.status, self.code, self.values = status, code, values


def _response(status: int, code: str, message: str, **extra):
    return jsonify(error={"status": status, "code": code, "message": message, **extra}), status


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return _response(error.status, error.code, translate(f"errors.{error.code}", **error.values))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit_mb = round((app.config["MAX_CONTENT_LENGTH"] or 0) / 2**20, 1)
        return _response(413, "too_large", translate("errors.too_large", limit_mb=limit_mb))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = _CODES.get(error.code)
        message = translate(f"errors.{code}") if code else (error.description or translate("errors.bad_request"))
        return _response(error.code, code or error.name.lower().replace(" ", "_"), message)

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        app.logger.exception("unhandled error")
        return _response(500, "internal", translate("errors.internal"))
