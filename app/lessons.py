"""Lessons: Markdown files per language in ``web/lessons/`` (format: docs/lessons.md), loaded and checked here.

A lesson is ``<slug>.es.md`` + ``<slug>.en.md``: YAML front matter, then exactly four ``##`` sections (what it
is / see it / the code / try it), rendered server-side by markdown-it-py with raw HTML disabled. Each ``code:``
entry names a function, class or ``Class.method`` of a repository file; its source is read from that file
(``ast`` for Python, top-level declarations for JavaScript), never copied into the lesson.
:func:`problems` is the one validator (tests and ``riim lessons check`` use it); a page never fails on a
broken lesson, it shows the problem in place of the missing part.
"""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import click
import yaml
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parent.parent
LESSONS_DIR = REPO / "web" / "lessons"
DEMOS_DIR = REPO / "web" / "static" / "js" / "lessons"
LANGUAGES = ("es", "en")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MODULE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
REQUIRED = {"title": str, "order": int, "summary": str, "concepts": list, "prerequisites": list, "demos": list,
            "exercise": str, "code": list}
OPTIONAL = {"tfjs": bool}
INVARIANT = ("order", "concepts", "prerequisites", "demos", "exercise", "tfjs")  # equal in es and en
PARTS = ("what", "see", "code", "try")
MAX_WHAT_WORDS = 400
MAX_WHOLE_FILE_LINES = 150

_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


class LessonError(ValueError):
    """A lesson file that cannot be read (bad front matter, wrong sections)."""


@dataclass(frozen=True)
class Excerpt:
    """The source of one ``code:`` entry: ``text`` is lines ``start``..``end`` of ``path``; ``error`` if unresolved."""

    path: str
    symbol: str
    why: str
    start: int = 0
    end: int = 0
    text: str = ""
    error: str = ""


@dataclass(frozen=True)
class Section:
    heading: str
    markdown: str
    html: str


@dataclass(frozen=True)
class Lesson:
    slug: str
    lang: str
    meta: dict
    sections: tuple[Section, ...]
    excerpts: tuple[Excerpt, ...] = field(default=())

    @property
    def title(self) -> str:
        return self.meta["title"]

    @property
    def order(self) -> int:
        return self.meta["order"]

    def part(self, name: str) -> Section:
        return self.sections[PARTS.index(name)]


def slugs() -> list[str]:
    """Every lesson slug that has at least one language file."""
    return sorted({path.name.split(".")[0] for path in LESSONS_DIR.glob("*.md")})


def lesson_path(slug: str, lang: str) -> Path:
    return LESSONS_DIR / f"{slug}.{lang}.md"


def split_front_matter(text: str) -> tuple[dict, str]:
    """(front matter mapping, Markdown body) of a lesson file."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise LessonError("the file must start with a '---' line (YAML front matter)")
    try:
        end = next(index for index in range(1, len(lines)) if lines[index].strip() == "---")
    except StopIteration:
        raise LessonError("the front matter has no closing '---' line") from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        raise LessonError(f"front matter is not valid YAML: {error}") from None
    if not isinstance(meta, dict):
        raise LessonError("the front matter must be a mapping")
    return meta, "\n".join(lines[end + 1:])


def split_sections(body: str) -> list[tuple[str, str]]:
    """(heading, Markdown) of each ``## `` section of ``body`` (headings inside code fences do not count)."""
    sections: list[tuple[str, list[str]]] = []
    fence = None
    for line in body.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
        if fence is None and line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip():
            raise LessonError("text before the first '## ' section")
    return [(heading, "\n".join(lines).strip()) for heading, lines in sections]


def render(markdown: str) -> str:
    """Markdown → HTML (CommonMark + tables); raw HTML in the source is escaped, never passed through."""
    return _markdown.render(markdown)


def links(markdown: str) -> list[str]:
    """The link and image targets of a Markdown text."""
    found = []
    for token in _markdown.parse(markdown):
        for child in token.children or ():
            if child.type in ("link_open", "image"):
                found.append(child.attrGet("href") or child.attrGet("src") or "")
    return found


def word_count(markdown: str) -> int:
    return len(re.findall(r"\w+(?:[-'’]\w+)*", markdown))


# --- code excerpts ---------------------------------------------------------------------------------

def repository_file(relative: str) -> Path:
    """``relative`` as a file inside the repository (no absolute paths, no '..', no hidden Git internals)."""
    path = Path(relative)
    if not relative or path.is_absolute() or ".." in path.parts or path.parts[0] == ".git":
        raise LookupError(f"{relative}: give a path relative to the repository")
    full = REPO / path
    if not full.is_file():
        raise LookupError(f"{relative}: no such file in the repository")
    return full


def python_span(source: str, symbol: str) -> tuple[int, int]:
    """First and last line (1-based, decorators included) of a top-level function/class or ``Class.method``."""
    scope: list[ast.stmt] = ast.parse(source).body
    node = None
    for name in symbol.split("."):
        node = next((item for item in scope if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and item.name == name), None)
        if node is None:
            raise LookupError(f"no function or class {name!r}")
        scope = node.body if isinstance(node, ast.ClassDef) else []
    start = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
    return start, node.end_lineno


def javascript_span(source: str, symbol: str) -> tuple[int, int]:
    """First and last line of a top-level ``function``/``class``/``const`` declaration: from its line (and the
    comment block just above it) to the next line that closes it at column 0."""
    lines = source.split("\n")
    declaration = re.compile(rf"^(export\s+)?(default\s+)?(async\s+)?(function\*?|class|const|let)\s+{re.escape(symbol)}\b")
    start = next((index for index, line in enumerate(lines) if declaration.match(line)), None)
    if start is None:
        raise LookupError(f"no top-level function, class or const {symbol!r}")
    end = start
    if not lines[start].rstrip().endswith(";"):
        end = next((index for index in range(start + 1, len(lines)) if re.match(r"^[}\]]", lines[index])), None)
        if end is None:
            raise LookupError(f"{symbol!r} is not closed at column 0")
    while start > 0 and lines[start - 1].lstrip().startswith(("//", "/*", "*")):
        start -= 1
    return start + 1, end + 1


def whole_file_span(source: str, symbol: str) -> tuple[int, int]:
    """Symbol ``*``: every line of a short file (a script, a workflow) that has no functions to point at."""
    lines = source.rstrip("\n").split("\n")
    if symbol != "*":
        raise LookupError("only .py and .js files have symbols; give symbol '*' for the whole file")
    if len(lines) > MAX_WHOLE_FILE_LINES:
        raise LookupError(f"{len(lines)} lines: a whole-file excerpt has at most {MAX_WHOLE_FILE_LINES}")
    return 1, len(lines)


@functools.lru_cache(maxsize=256)
def _excerpt(path: str, symbol: str, mtime: float) -> tuple[int, int, str]:
    try:
        source = (REPO / path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LookupError(f"{path} is not a text file") from None
    span = {".py": python_span, ".js": javascript_span}.get(Path(path).suffix, whole_file_span)
    try:
        start, end = span(source, symbol)
    except SyntaxError as error:
        raise LookupError(f"{path} does not parse: {error}") from None
    return start, end, "\n".join(source.split("\n")[start - 1:end])


def excerpt(entry: dict) -> Excerpt:
    """The source of one ``code:`` entry, read now from the repository's file (an ``error`` if unresolved)."""
    path, symbol, why = str(entry.get("path", "")), str(entry.get("symbol", "")), str(entry.get("why", ""))
    try:
        full = repository_file(path)
        start, end, text = _excerpt(path, symbol, full.stat().st_mtime)
    except LookupError as error:
        return Excerpt(path, symbol, why, error=f"{path}: {symbol}: {error.args[0]}")
    return Excerpt(path, symbol, why, start, end, text)


# --- loading and checking --------------------------------------------------------------------------

def read(slug: str, lang: str) -> Lesson:
    """The lesson ``slug`` in ``lang``, its sections rendered and its code excerpts read.

    Raises ``FileNotFoundError`` if there is no such file and :class:`LessonError` if it is malformed."""
    if not SLUG.match(slug) or lang not in LANGUAGES:
        raise FileNotFoundError(slug)
    path = lesson_path(slug, lang)
    meta, sections = _parsed(path, path.stat().st_mtime)
    code = meta.get("code") if isinstance(meta.get("code"), list) else []
    return Lesson(slug, lang, meta, sections, tuple(excerpt(entry) for entry in code if isinstance(entry, dict)))


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, mtime: float) -> tuple[dict, tuple[Section, ...]]:
    """Front matter and rendered sections of a lesson file, parsed again whenever the file changes (the code
    excerpts are not cached here: :func:`read` takes them from their files on every call)."""
    meta, body = split_front_matter(path.read_text(encoding="utf-8"))
    sections = split_sections(body)
    if len(sections) != len(PARTS):
        raise LessonError(f"{path.name}: {len(sections)} '## ' sections, expected {len(PARTS)} "
                          "(what it is / see it / the code / try it)")
    return meta, tuple(Section(heading, text, render(text)) for heading, text in sections)


def index(lang: str) -> list[Lesson]:
    """Every readable lesson in ``lang``, in the suggested order (``order``, then slug)."""
    found = []
    for slug in slugs():
        try:
            found.append(read(slug, lang))
        except (FileNotFoundError, LessonError):
            continue
    return sorted(found, key=lambda lesson: (lesson.meta.get("order", 0), lesson.slug))


def concepts() -> dict:
    """web/lessons/concepts.yaml: ``required_issues`` and ``concepts`` (key → {es, en, issue})."""
    path = LESSONS_DIR / "concepts.yaml"
    return _concepts(path, path.stat().st_mtime)


@functools.lru_cache(maxsize=4)
def _concepts(path: Path, mtime: float) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def meta_problems(meta: dict, where: str) -> list[str]:
    found = [f"{where}: missing '{key}'" for key in REQUIRED if key not in meta]
    found += [f"{where}: unknown key '{key}'" for key in meta if key not in REQUIRED and key not in OPTIONAL]
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        if key in meta and not isinstance(meta[key], kind) or (kind is int and isinstance(meta.get(key), bool)):
            found.append(f"{where}: '{key}' must be a {kind.__name__}")
    if found:
        return found
    for key in ("title", "summary", "exercise"):
        if not meta[key].strip():
            found.append(f"{where}: '{key}' is empty")
    for key in ("concepts", "prerequisites", "demos"):
        found += [f"{where}: '{key}' entry {item!r} is not a name" for item in meta[key]
                  if not isinstance(item, str) or not MODULE.match(item)]
    if not MODULE.match(meta["exercise"]):
        found.append(f"{where}: exercise {meta['exercise']!r} is not a module name")
    for number, entry in enumerate(meta["code"], 1):
        if not isinstance(entry, dict) or set(entry) != {"path", "symbol", "why"} \
                or not all(isinstance(value, str) and value.strip() for value in entry.values()):
            found.append(f"{where}: code entry {number} needs exactly path, symbol and why (non-empty)")
    if not meta["code"]:
        found.append(f"{where}: 'code' lists no excerpt")
    return found


def problems(slug: str) -> list[str]:
    """Everything wrong with lesson ``slug`` (both languages); empty when it is valid."""
    if not SLUG.match(slug):
        return [f"{slug}: a slug is lowercase a-z, 0-9 and '-'"]
    found, lessons = [], {}
    for lang in LANGUAGES:
        where = lesson_path(slug, lang).name
        try:
            lesson = read(slug, lang)
        except FileNotFoundError:
            found.append(f"{where}: missing")
            continue
        except LessonError as error:
            found.append(f"{where}: {error}")
            continue
        meta_found = meta_problems(lesson.meta, where)
        found += meta_found
        if meta_found:
            continue
        lessons[lang] = lesson
        found += [f"{where}: section {number} has no heading or no text"
                  for number, section in enumerate(lesson.sections, 1) if not section.heading or not section.markdown]
        if (words := word_count(lesson.part("what").markdown)) > MAX_WHAT_WORDS:
            found.append(f"{where}: 'what it is' has {words} words (at most {MAX_WHAT_WORDS})")
        found += [f"{where}: link {target!r} leaves the app (the app works offline: link its own pages)"
                  for section in lesson.sections for target in links(section.markdown)
                  if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)]
        found += [f"{where}: {item.error}" for item in lesson.excerpts if item.error]
        for module, export in [*((name, "mount") for name in lesson.meta["demos"]), (lesson.meta["exercise"], "exercise")]:
            path = DEMOS_DIR / f"{module}.js"
            if not path.is_file():
                found.append(f"{where}: demo module web/static/js/lessons/{module}.js does not exist")
            elif not re.search(rf"^export\s+(async\s+)?function\s+{export}\s*\(", path.read_text(encoding="utf-8"), re.MULTILINE):
                found.append(f"{where}: web/static/js/lessons/{module}.js exports no {export}()")
        found += [f"{where}: prerequisite {name!r} is not a lesson" for name in lesson.meta["prerequisites"]
                  if not lesson_path(name, lang).is_file()]
        known = concepts()["concepts"]
        found += [f"{where}: concept {name!r} is not in web/lessons/concepts.yaml" for name in lesson.meta["concepts"]
                  if name not in known]
    if len(lessons) == len(LANGUAGES):
        es, en = (lessons[lang].meta for lang in LANGUAGES)
        found += [f"{slug}: '{key}' differs between es and en" for key in INVARIANT if es.get(key) != en.get(key)]
        if [(item["path"], item["symbol"]) for item in es["code"]] != [(item["path"], item["symbol"]) for item in en["code"]]:
            found.append(f"{slug}: code paths/symbols differ between es and en")
    return found


def all_problems() -> list[str]:
    """Problems of every lesson, plus prerequisite cycles and concepts.yaml's shape."""
    found = [problem for slug in slugs() for problem in problems(slug)]
    table = concepts()
    if not isinstance(table.get("required_issues"), list) or not isinstance(table.get("concepts"), dict):
        return found + ["web/lessons/concepts.yaml: needs 'required_issues' (list) and 'concepts' (mapping)"]
    found += [f"concepts.yaml: {key} needs es, en and issue" for key, value in table["concepts"].items()
              if not isinstance(value, dict) or not {"es", "en", "issue"} <= set(value)]
    return found + cycles()


def cycles() -> list[str]:
    """Prerequisite cycles (a lesson that, through its prerequisites, requires itself)."""
    graph = {}
    for slug in slugs():
        try:
            graph[slug] = [name for name in read(slug, "es").meta.get("prerequisites") or [] if isinstance(name, str)]
        except (FileNotFoundError, LessonError):
            graph[slug] = []

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(name == goal or (name not in seen and not seen.add(name) and reaches(name, goal, seen))
                   for name in graph.get(start, ()))

    return [f"{slug}: its prerequisites lead back to it" for slug in graph if reaches(slug, slug, set())]


def missing_concepts() -> list[str]:
    """Concepts of the required issues that no valid lesson covers in both languages with its four parts."""
    table = concepts()
    required = set(table["required_issues"])
    covered = {name for slug in slugs() if not problems(slug) for name in read(slug, "es").meta["concepts"]}
    return [f"{key} (issue {value['issue']})" for key, value in table["concepts"].items()
            if value["issue"] in required and key not in covered]


@click.group("lessons")
def lessons_cli():
    """The lessons of /learn (web/lessons/, docs/lessons.md)."""


@lessons_cli.command("check")
def check_command():
    """Validate every lesson (both languages, code excerpts, demo modules, concepts); exit 1 on a problem."""
    found = all_problems()
    missing = missing_concepts()
    for problem in found:
        click.echo(problem, err=True)
    for concept in missing:
        click.echo(f"no valid lesson covers the required concept {concept}", err=True)
    click.echo(f"{len(slugs())} lessons, {len(found)} problems, {len(missing)} required concepts without a lesson")
    if found or missing:
        raise SystemExit(1)
