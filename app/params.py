"""Strict parsing of request parameters and JSON bodies: a malformed value is a 400 JSON error, never a 500.

- Integers are ASCII digits only (``str.isdigit`` also accepts "²" and "٣", which ``int`` then refuses),
  at most :data:`MAX_DIGITS` of them (Python refuses to convert very long digit strings) and in a range.
- Every parameter value is at most :data:`MAX_LENGTH` characters.
- JSON bodies: :class:`Request` is the app's request class, so every ``request.get_json`` parses at most
  ``JSON_MAX_BYTES`` (413) nested at most ``JSON_MAX_DEPTH`` deep (400); deeper input would otherwise hit
  Python's recursion limit. (Only request bodies: the app's own JSON, and a test client's reading of
  answers, are not limited.)
- Multipart bodies: each part's headers are at most ``MAX_PART_HEADER_BYTES`` (413), checked before
  Werkzeug parses them (:class:`FormDataParser`).

:func:`init_app` (called by :func:`app.create_app`) installs both.
"""
from __future__ import annotations

import io
import re

import flask
from flask import Flask, current_app, request
from werkzeug import formparser

from app.errors import ApiError

MAX_LENGTH = 200  # characters of one parameter value
MAX_DIGITS = 12
ASCII_DIGITS = frozenset("0123456789")


def text(name: str, default: str | None = None, form: bool = False) -> str | None:
    """The query parameter ``name`` (or, with ``form``, the form field when the query lacks it)."""
    raw = request.args.get(name)
    if raw is None and form:
        raw = request.form.get(name)
    if raw is None:
        return default
    if len(raw) > MAX_LENGTH:
        raise ApiError(400, "bad_param", name=name, value=raw[:80] + "…")
    return raw


def as_int(raw: str, low: int, high: int) -> int | None:
    """``raw`` as an integer in ``low..high`` (ASCII digits, at most :data:`MAX_DIGITS`), else None."""
    if not raw or len(raw) > MAX_DIGITS or not ASCII_DIGITS.issuperset(raw) or not low <= int(raw) <= high:
        return None
    return int(raw)


def json_int(name: str, value, low: int, high: int) -> int:
    """A JSON body's integer field ``name`` in ``low..high`` (a bool is not an integer), else a 400."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, "bad_param", name=name, value=str(value)[:80])
    return value


def integer(name: str, default: int, low: int, high: int, form: bool = False) -> int:
    """An integer parameter in ``low..high`` (``default`` when absent), else a 400."""
    raw = text(name, form=form)
    if raw is None:
        return default
    value = as_int(raw, low, high)
    if value is None:
        raise ApiError(400, "bad_param", name=name, value=raw[:80])
    return value


def flag(name: str, default: bool, form: bool = False) -> bool:
    """A boolean parameter: 1/0, true/false, yes/no (any case)."""
    raw = text(name, form=form)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, "bad_param", name=name, value=raw[:80])


def choice(name: str, allowed: tuple[str, ...], default: str | None = None, form: bool = False) -> str:
    """A parameter that must be one of ``allowed`` (any case; ``default``, else the first, when absent)."""
    raw = text(name, form=form)
    if raw is None:
        return default or allowed[0]
    if raw.lower() not in allowed:
        raise ApiError(400, "bad_param", name=name, value=raw[:80])
    return raw.lower()


def depth(value) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, level = 0, [(value, 0)]
    while level:
        node, seen = level.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, seen + 1)
            level.extend((child, seen + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class FormDataParser(formparser.FormDataParser):
    """Werkzeug's form parser, refusing a multipart part whose headers are longer than
    ``MAX_PART_HEADER_BYTES`` before any is parsed. Werkzeug parses ``Content-Disposition`` parameters in
    Python at about 0.7 µs a byte: 60 parts with 150 KB headers (9 MB, under the body limit) cost 5 s of
    CPU in werkzeug 3.1.9 and 23 s in 3.1.3, where it was quadratic."""

    def parse(self, stream, mimetype, content_length, options=None):
        boundary = (options or {}).get("boundary")
        if mimetype == "multipart/form-data" and boundary:
            data = stream.read()  # at most MAX_CONTENT_LENGTH: Werkzeug's limited stream raises past it
            check_part_headers(data, boundary.encode("latin-1"), current_app.config["MAX_PART_HEADER_BYTES"],
                               current_app.config["MAX_FORM_PARTS"])
            stream = io.BytesIO(data)
        return super().parse(stream, mimetype, content_length, options)


BLANK_LINE = re.compile(rb"\r\n\r\n|\r\r|\n\n")  # the end of a part's headers, as Werkzeug reads it


def check_part_headers(data: bytes, boundary: bytes, limit: int, max_parts: int) -> None:
    """413 when a part of the multipart ``data`` has more than ``limit`` bytes of headers (looks at the
    first ``max_parts`` + 1 parts; Werkzeug refuses more parts than that)."""
    delimiter = b"--" + boundary
    position = data.find(delimiter)
    for _ in range(max_parts + 1):
        if position == -1 or data.startswith(b"--", position + len(delimiter)):
            return
        start = position + len(delimiter)
        end = BLANK_LINE.search(data, start, start + limit)
        if end is None:
            if len(data) - start > limit:
                raise ApiError(413, "form_header_too_large", limit_kb=limit // 1024)
            return  # a truncated body: Werkzeug answers it
        position = data.find(delimiter, end.end())


class Request(flask.Request):
    """Flask's request with bounded bodies: multipart headers checked by :class:`FormDataParser`, JSON
    parsed only up to ``JSON_MAX_BYTES`` (413) and ``JSON_MAX_DEPTH`` levels (400)."""

    form_data_parser_class = FormDataParser

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        config = current_app.config
        if len(self.get_data(cache=True)) > config["JSON_MAX_BYTES"]:
            raise ApiError(413, "json_too_large", limit_kb=config["JSON_MAX_BYTES"] // 1024)
        try:
            value = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            value = None
        else:
            if depth(value) <= config["JSON_MAX_DEPTH"]:
                return value
        raise ApiError(400, "json_too_deep", limit=config["JSON_MAX_DEPTH"])


def init_app(app: Flask) -> None:
    """Strict JSON and multipart parsing for every request of ``app``."""
    app.request_class = Request
