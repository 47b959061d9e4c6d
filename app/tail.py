"""The end of a text file without reading the rest: job logs and the lab's alerts grow as long as they live,
and pages poll them (the job panel every second, the navbar's alert count on every page)."""
from __future__ import annotations

import os
from pathlib import Path


def tail_text(path: Path, max_bytes: int) -> str:
    """The last ``max_bytes`` bytes of ``path`` decoded as UTF-8 (a character cut at the start becomes U+FFFD);
    "" when the file does not exist."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - max_bytes))
            return file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
