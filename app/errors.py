"""JSON errors for every 4xx/5xx: ``{"error": {"status", "code", "message"}}`` in the client's language."""
from __future__ import annotations

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.i18n import translate

_CODES = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """An error the client caused (or a model we cannot serve), with a catalogue message key."""

    def __init__(self, status: int, code: str, **values):
        super().__init__(code)
        self.status, self.code, self.values = status, code, values


def _response(status: int, code: str, message: str, headers=(), **extra):
    return jsonify(error={"status": status, "code": code, "message": message, **extra}), status, list(headers)


def error_response(error: ApiError):
    """The JSON response for ``error`` (for handlers of other exception types that map to an ApiError)."""
    return _response(error.status, error.code, translate(f"errors.{error.code}", **error.values))


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"] or 0
        if request.content_length is not None and request.content_length <= limit:  # form parts/fields limit
            return _response(413, "form_too_large", translate("errors.form_too_large",
                                                              parts=app.config["MAX_FORM_PARTS"]))
        return _response(413, "too_large", translate("errors.too_large", limit_mb=round(limit / 2**20, 1)))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        """Werkzeug's errors as JSON, keeping their headers (``Allow`` on a 405, as RFC 9110 requires)."""
        code = _CODES.get(error.code)
        message = translate(f"errors.{code}") if code else (error.description or translate("errors.bad_request"))
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return _response(error.code, code or error.name.lower().replace(" ", "_"), message, headers)

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        app.logger.exception("unhandled error")
        return _response(500, "internal", translate("errors.internal"))
