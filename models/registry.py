"""On-disk model registry: immutable versions, atomic publish, an atomically switched ``current`` pointer.

Layout::

    <root>/<name>/versions/v1/card.json, model.onnx, ...   one directory per version, never rewritten
    <root>/<name>/current.json                              {"version": "v2", "history": ["v1", "v2"]}

Publishing writes into a hidden temporary directory and renames it into place, so a reader never sees a
half-written version. The pointer file is replaced with ``os.replace`` (atomic on POSIX). Writers take
a per-model ``fcntl`` lock, so two processes cannot publish the same version number.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from models import atomic
from models import card as card_schema

DEFAULT_ROOT = Path(__file__).resolve().parent / "store"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RegistryError(LookupError):
    """A model or version does not exist, or an operation is not possible."""


class CorruptModelError(RegistryError):
    """A file of a version does not match the sha256 recorded in its card."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Draft:
    """A version being written: put files in ``dir``, fill ``card``; ``files`` maps format → file name."""

    def __init__(self, directory: Path, card: dict):
        self.dir = directory
        self.card = card
        self.version: str | None = None


class Registry:
    def __init__(self, root: str | Path = DEFAULT_ROOT):
        self.root = Path(root).absolute()  # Flask resolves relative file paths against the app package

    # --- reading -------------------------------------------------------------------------------
    def models(self, task: str | None = None) -> list[str]:
        """Model names, sorted; with ``task``, only the models whose newest version's card has that task."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir())
        return names if task is None else [name for name in names if self.task(name) == task]

    def task(self, name: str) -> str | None:
        """The ``task`` of the newest version's card (a model keeps one task), None without versions."""
        versions = self.versions(name)
        return self.card(name, versions[-1])["task"] if versions else None

    def versions(self, name: str) -> list[str]:
        directory = self._model_dir(name) / "versions"
        if not directory.is_dir():
            raise RegistryError(f"unknown model {name!r}")
        found = [p.name for p in directory.iterdir() if re.fullmatch(r"v[0-9]+", p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def pointer(self, name: str) -> dict:
        """The pointer file's content: ``{"version": ..., "history": [...]}`` (empty if never promoted)."""
        path = self._model_dir(name) / "current.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {"version": None, "history": []}

    def current(self, name: str) -> str | None:
        return self.pointer(name)["version"]

    def resolve(self, name: str, version: str | None = None) -> str:
        """``version`` or the current one; raises :class:`RegistryError` if it does not exist."""
        known = self.versions(name)  # raises for an unknown model
        version = version or self.current(name)
        if version is None:
            raise RegistryError(f"model {name!r} has no current version")
        if version not in known:
            raise RegistryError(f"model {name!r} has no version {version!r}")
        return version

    def path(self, name: str, version: str | None = None) -> Path:
        return self._model_dir(name) / "versions" / self.resolve(name, version)

    def card(self, name: str, version: str | None = None) -> dict:
        return json.loads((self.path(name, version) / "card.json").read_text())

    def file(self, name: str, version: str | None, fmt: str, verify: bool = True) -> Path:
        """Path of the ``fmt`` file of a version, checked against the card's sha256 when ``verify``."""
        directory = self.path(name, version)
        entry = self.card(name, version)["files"].get(fmt)
        if entry is None:
            raise RegistryError(f"{name}:{directory.name} has no {fmt!r} file")
        if verify:
            for item in [entry, *entry.get("parts", [])]:  # a multi-file format (TF.js) lists its parts
                part = directory / item["path"]
                if not part.is_file() or sha256_file(part) != item["sha256"]:
                    raise CorruptModelError(
                        f"{name}:{directory.name} file {item['path']} is missing or does not match its sha256; "
                        "rebuild or re-export this version")
        return directory / entry["path"]

    # --- writing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def publish(self, name: str, card: dict, promote: bool | None = None):
        """Write a new version atomically; yields a :class:`Draft`.

        On exit the files named in ``draft.card["files"]`` (format → file name) get their sha256 and
        size, ``name``/``version``/``created`` are set, the card is validated and the directory is
        renamed into place. ``promote`` defaults to "only if the model has no current version yet"; a
        version without an ``onnx`` file (training's Keras output, before export) is never promoted.
        """
        if not _NAME.fullmatch(name):
            raise RegistryError(f"invalid model name {name!r}: use a-z, 0-9, '-' and '_'")
        model_dir = self._model_dir(name)
        (model_dir / "versions").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=".draft-"))
        draft = Draft(staging, dict(card))
        try:
            yield draft
            with self._lock(name):
                version = f"v{max((int(v[1:]) for v in self.versions(name)), default=0) + 1}"
                draft.card.update(name=name, version=version,
                                  created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
                draft.card["files"] = {fmt: self._describe(staging, entry)
                                       for fmt, entry in draft.card.get("files", {}).items()}
                card_schema.validate(draft.card)
                servable = "onnx" in draft.card["files"]
                if promote and not servable:
                    raise RegistryError(f"{name}: a version without an ONNX model cannot be promoted")
                atomic.write_json(staging / "card.json", draft.card)
                for path in staging.rglob("*"):
                    if path.is_file():
                        os.chmod(path, 0o444)  # versions are immutable
                os.chmod(staging, 0o755)
                os.rename(staging, model_dir / "versions" / version)
                draft.version = version
                if servable and (promote or (promote is None and self.current(name) is None)):
                    self._set_current(name, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def amend(self, name: str, version: str | None = None):
        """Add files (and card sections) to an existing version; yields a :class:`Draft`.

        Write new files under ``draft.dir`` (a staging folder inside the version) and list them in
        ``draft.card["files"]`` as format → name (or ``{"path", "parts": [names]}``), like :meth:`publish`.
        On exit each new top-level file or folder is renamed into the version, then card.json is replaced
        atomically: a reader sees the old card or the new one, never a card naming a missing file. Files
        already in the card are never replaced (versions are immutable).
        """
        directory = self.path(name, version)
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=".amend-"))
        draft = Draft(staging, self.card(name, directory.name))
        try:
            yield draft
            with self._lock(name):
                card = self.card(name, directory.name)
                referenced = {entry["path"].split("/")[0] for entry in card["files"].values()}
                new = {fmt: entry for fmt, entry in draft.card["files"].items() if not isinstance(entry, dict)
                       or "sha256" not in entry}
                for fmt, entry in new.items():
                    top = (entry if isinstance(entry, str) else entry["path"]).split("/")[0]
                    if fmt in card["files"] or top in referenced:
                        raise RegistryError(f"{name}:{directory.name} already has {top!r}; versions are immutable")
                    draft.card["files"][fmt] = self._describe(staging, entry)
                draft.card = {**draft.card, "files": {**card["files"], **draft.card["files"]}}
                card_schema.validate(draft.card)
                for top in {entry["path"].split("/")[0] for fmt, entry in draft.card["files"].items() if fmt in new}:
                    target = directory / top
                    if target.is_dir():  # left over by an interrupted amend, never in the card
                        shutil.rmtree(target)
                    for path in [staging / top, *(staging / top).rglob("*")]:
                        os.chmod(path, 0o755 if path.is_dir() else 0o444)
                    os.replace(staging / top, target)
                atomic.write_json(directory / "card.json", draft.card)
                os.chmod(directory / "card.json", 0o444)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def promote(self, name: str, version: str) -> None:
        """Make ``version`` the current one (atomic pointer switch, remembered for rollback); it must
        have the ONNX file that serving runs."""
        with self._lock(name):
            version = self.resolve(name, version)
            if "onnx" not in self.card(name, version)["files"]:
                raise RegistryError(f"{name}:{version} has no ONNX model to serve yet; run `riim export {name}:{version}`")
            self._set_current(name, version)

    def rollback(self, name: str) -> str:
        """Return to the version that was current before the current one; returns it."""
        with self._lock(name):
            history = self.pointer(name)["history"]
            if len(history) < 2:
                raise RegistryError(f"model {name!r} has no earlier promoted version to roll back to")
            history = history[:-1]
            atomic.write_json(self._model_dir(name) / "current.json",
                              {"version": history[-1], "history": history})
            return history[-1]

    # --- internals -----------------------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise RegistryError(f"invalid model name {name!r}")
        return self.root / name

    def _set_current(self, name: str, version: str) -> None:
        history = self.pointer(name)["history"]
        if not history or history[-1] != version:
            history = history + [version]
        atomic.write_json(self._model_dir(name) / "current.json", {"version": version, "history": history})

    @staticmethod
    def _describe(directory: Path, entry) -> dict:
        """``{"path", "sha256", "bytes"}``; with ``parts`` each part is described too and ``bytes`` is the total."""
        names = [entry] if isinstance(entry, str) else [entry["path"], *(
            part if isinstance(part, str) else part["path"] for part in entry.get("parts", []))]
        described = []
        for file_name in names:
            path = directory / file_name
            if not path.is_file():
                raise RegistryError(f"draft lists {file_name!r} but the file was not written")
            described.append({"path": file_name, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        if len(described) == 1 and (isinstance(entry, str) or "parts" not in entry):
            return described[0]
        return {**described[0], "bytes": sum(d["bytes"] for d in described), "parts": described[1:]}

    @contextlib.contextmanager
    def _lock(self, name: str):
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with open(model_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
