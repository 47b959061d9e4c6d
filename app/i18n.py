"""Spanish/English strings from the one catalogue ``web/static/i18n/messages.json`` (also used by the JS).

The language is ``?lang=`` if given, else the best ``Accept-Language`` match, else Spanish.
"""
from __future__ import annotations

import json
from pathlib import Path

from flask import Flask, current_app, has_request_context, request

LANGUAGES = ("es", "en")
CATALOGUE = Path(__file__).resolve().parent.parent / "web" / "static" / "i18n" / "messages.json"


def init_app(app: Flask) -> None:
    app.extensions["riim.messages"] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    app.jinja_env.globals.update(t=translate, current_language=language)

    @app.after_request
    def remember_language(response):
        if request.args.get("lang") in LANGUAGES:
            response.set_cookie("lang", request.args["lang"], max_age=365 * 24 * 3600, samesite="Lax")
        return response


def language() -> str:
    if not has_request_context():
        return LANGUAGES[0]
    asked = request.args.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def translate(key: str, lang: str | None = None, **values) -> str:
    entry = current_app.extensions["riim.messages"][key]
    return entry[lang or language()].format(**values)
