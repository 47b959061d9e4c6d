"""The model card (``card.json``): validation against ``card.schema.json`` and small readers.

The JSON Schema is the single definition of the card; the browser fetches the same file.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("card.schema.json")
IMAGE_TASK = "image-classification"  # what /predict and the image pages serve; other tasks have their own pages
PRECISIONS = {"fp32": "onnx", "int8": "onnx_int8"}  # a served precision → the card's files key
INT8_MIN_AGREEMENT = 0.99  # "auto" serves int8 only when it gives fp32's decision at least this often


class CardError(ValueError):
    """A card does not follow the schema; ``problems`` lists every bad field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid model card:\n" + "\n".join(f"  - {p}" for p in problems))


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate(card: dict) -> dict:
    """Return ``card`` if it follows the schema, else raise :class:`CardError` naming every bad field."""
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    problems = sorted(
        f"{'/'.join(str(p) for p in error.absolute_path) or '(card)'}: {error.message}"
        for error in validator.iter_errors(card)
    )
    if problems:
        raise CardError(problems)
    return card


def served_format(card: dict, precision: str = "auto") -> dict:
    """Which ONNX file serves ``card`` at ``precision`` ("fp32", "int8" or "auto") and why:
    ``{"format", "precision", "rule", "decision_agreement", "images"}``. "int8" and "auto" fall back to fp32
    without an int8 file; "auto" also needs the parity report (``riim export``) to show the int8 model gives
    the same decision (cat / dog / unknown) as fp32 on ≥ :data:`INT8_MIN_AGREEMENT` of its held-out photos."""
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"model precision {precision!r}: choose one of fp32, int8, auto")
    report = card.get("parity", {}).get("report", {})
    row = report.get("formats", {}).get(PRECISIONS["int8"], {})
    agreement = row.get("answer_agreement")
    chosen = "fp32"
    if PRECISIONS["int8"] in card["files"]:
        if precision == "int8" or (precision == "auto" and agreement is not None and agreement >= INT8_MIN_AGREEMENT):
            chosen = "int8"
    return {"format": PRECISIONS[chosen], "precision": chosen, "rule": precision, "decision_agreement": agreement,
            "minimum": INT8_MIN_AGREEMENT, "images": report.get("images", {}).get("total")}


PARITY_COLUMNS = ("format", "MiB", "top-1", "answer", "inet top-1", "max|Δp|", "mean|Δp|", "accuracy", "latency p50/p95 ms")


def parity_table(report: dict) -> str:
    """The card's ``parity.report`` as a fixed-width text table, one row per format."""
    rows = [PARITY_COLUMNS]
    for fmt, row in report["formats"].items():
        inet = row.get("imagenet_top1_agreement")
        rows.append((fmt, f"{row['bytes'] / 2**20:.2f}", f"{row['top1_agreement']:.3f}", f"{row['answer_agreement']:.3f}",
                     "-" if inet is None else f"{inet:.3f}", f"{row['max_abs_dp']:.2g}", f"{row['mean_abs_dp']:.2g}",
                     "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}",
                     "  ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in row["latency_ms"].items())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(PARITY_COLUMNS) - 1)]
    images = ", ".join(f"{k} {v}" for k, v in report["images"].items())
    lines = [f"parity vs {report['reference']} on '{report['output']}' ({images}; int8 calibrated on "
             f"{report['calibration']['images']} {report['calibration']['source']}):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return "\n".join(lines)
