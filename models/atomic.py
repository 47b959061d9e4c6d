"""Atomic file writes, the one way RIIM replaces a file: readers see the old content or the new one, never
a part of it, also after a crash (write a temporary file in the same folder, fsync, ``os.replace``, fsync
the folder); and the matching reader of a JSON file that may not exist yet."""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

TEMP_PREFIX = ".tmp-"  # temporary files start with this; anything left by a crash can be deleted


@contextlib.contextmanager
def replacing(path: Path):
    """Yield a temporary path (same folder, same suffixes) to write; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        yield temp
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_bytes(path: Path, data: bytes) -> None:
    with replacing(path) as temp:
        temp.write_bytes(data)


def write_json(path: Path, data) -> None:
    write_bytes(path, json.dumps(data, indent=2, ensure_ascii=False).encode())


def read_json(path: Path):
    """The JSON in ``path``, or None when the file does not exist (yet) or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
