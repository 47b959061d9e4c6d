"""app/tail.py: the end of a growing file, as the job log and the lab's alerts read it."""
from __future__ import annotations

import json

from app.tail import tail_text
from tests.conftest import serving_app


def test_tail_reads_only_the_end(tmp_path):
    path = tmp_path / "log.txt"
    assert tail_text(path, 10) == ""  # absent
    path.write_text("short\n")
    assert tail_text(path, 100) == "short\n"
    path.write_text("x" * 1000 + "ñandú\n", encoding="utf-8")  # ñ and ú take 2 bytes each
    assert tail_text(path, 8) == "ñandú\n"
    assert tail_text(path, 7) == "\ufffdandú\n"  # a character cut at the start is replaced, not an error


def test_alerts_are_the_newest_of_a_long_history(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    lines = [json.dumps({"time": f"2026-12-02T00:{i // 60:02d}:{i % 60:02d}", "rule": "finished", "n": i})
             for i in range(3000)]
    (lab / "alerts.jsonl").write_text("\n".join(lines) + "\n")
    client = serving_app({"MODELS_DIR": str(tmp_path / "store"), "LAB_DIR": str(lab)}).test_client()
    alerts = client.get("/api/v1/lab/alerts?limit=200").get_json()["alerts"]
    assert [alert["n"] for alert in alerts] == list(range(2999, 2799, -1))  # newest first, none cut
    assert client.get("/api/v1/lab/alerts?limit=3").get_json()["alerts"][0]["n"] == 2999
