"""docs/guide.md (the student guide, es + en) points only at things that exist: every lesson (/learn/<slug>), every
`riim …` command, every `make` target, every script run with `.venv/bin/python` and every repository path it names."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from app import lessons
from cli.main import main

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "guide.md"
SPANS = re.findall(r"`([^`\n]+)`", GUIDE.read_text())
PATH = re.compile(r"^\.?[\w-]+(?:/[\w.-]+)*(?:/|\.[a-z]+)$")


def command_exists(words: list[str]) -> bool:
    """``riim a b …``: the words up to the first argument name a command (not a group) of the CLI."""
    command = main
    for word in words:
        if not isinstance(command, click.Group):
            break  # the rest are the command's arguments and options
        if word not in command.commands:
            return False
        command = command.commands[word]
    return not isinstance(command, click.Group)


def test_the_guide_has_both_languages_and_five_weeks():
    text = GUIDE.read_text()
    assert "## Español" in text and "## English" in text
    spanish, english = text.split("## English")
    assert [f"Semana {n}" in spanish for n in range(1, 6)] == [True] * 5
    assert [f"Week {n}" in english for n in range(1, 6)] == [True] * 5


def test_every_lesson_exists():
    named = set(re.findall(r"/learn/([a-z0-9-]+)", GUIDE.read_text()))
    assert named and named <= set(lessons.slugs()), named - set(lessons.slugs())
    assert all(lessons.problems(slug) == [] for slug in named)


@pytest.mark.parametrize("span", sorted({s for s in SPANS if s.startswith("riim ")}))
def test_every_riim_command_exists(span):
    assert command_exists(span.split()[1:]), span


@pytest.mark.parametrize("span", sorted({s for s in SPANS if s.startswith("make ")}))
def test_every_make_target_exists(span):
    targets = re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert span.split()[1] in targets, span


@pytest.mark.parametrize("span", sorted({s.split()[1] for s in SPANS if s.startswith(".venv/bin/python ")}
                                        | {s for s in SPANS if PATH.match(s) and "/" in s or re.match(r"^[\w.-]+\.(md|py)$", s)}))
def test_every_path_exists(span):
    assert (REPO / span).exists(), span


def test_the_checker_catches_what_does_not_exist():
    assert command_exists(["models", "show", "animals"]) and command_exists(["export", "ropa"])
    assert not command_exists(["models", "shw"]) and not command_exists(["nope"]) and not command_exists(["models"])
    assert PATH.match("training/prune.py") and PATH.match(".github/workflows/ci.yml") and not PATH.match("/api/v1")
