"""The one atomic-write helper: a reader sees the old content or the new, never a part, never a temp file."""
import json

import pytest

from models import atomic


def test_write_json_replaces_the_whole_file(tmp_path):
    path = tmp_path / "deep" / "state.json"
    atomic.write_json(path, {"epoch": 1})
    atomic.write_json(path, {"epoch": 2})
    assert json.loads(path.read_text()) == {"epoch": 2} and [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_content_and_no_temporary_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    atomic.write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(path) as temp:
            assert temp.name.startswith(atomic.TEMP_PREFIX) and temp.name.endswith(".weights.h5")
            temp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_read_json_is_none_for_a_missing_or_broken_file(tmp_path):
    path = tmp_path / "progress.json"
    assert atomic.read_json(path) is None
    path.write_text("{not json")
    assert atomic.read_json(path) is None
    atomic.write_json(path, {"epoch": 3})
    assert atomic.read_json(path) == {"epoch": 3}
