"""``riim export``: add every deployment format and the parity report to an existing registry version.

Formats (card ``files`` key → path in the version): ``onnx`` model.onnx (written at publish, reused),
``onnx_int8`` model.int8.onnx, ``tflite`` / ``tflite_dynamic`` / ``tflite_int8`` model[.dynamic|.int8].tflite,
``tfjs`` tfjs/model.json (TF.js GraphModel, float16 weights, the browser default), ``tfjs_uint8``
tfjs_uint8/model.json (GraphModel, uint8 weights, smallest), and ``tflite_qat`` model.qat.tflite when
training left a quantization-aware model (PTQ vs QAT side by side in the report). Formats already in the
card are reused after their sha256 is checked; new files go through
:meth:`models.registry.Registry.amend` (temp folder + rename, then the card).
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from export import heldout, parity, saved_model
from models.registry import Registry

FORMATS = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", "tflite": "model.tflite",
           "tflite_dynamic": "model.dynamic.tflite", "tflite_int8": "model.int8.tflite",
           "tfjs": "tfjs/model.json", "tfjs_uint8": "tfjs_uint8/model.json", "tflite_qat": "model.qat.tflite"}
INT8 = ("onnx_int8", "tflite_int8")


def load_keras(path: Path, qat: bool = False):
    from training.tf import keras

    if not qat:
        return keras.models.load_model(path, compile=False)
    import tensorflow_model_optimization as tfmot

    with tfmot.quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=False)


def _write(fmt: str, model, saved, directory: Path, files: dict[str, Path], calibration, qat_path: Path | None):
    """Write format ``fmt`` under ``directory``; returns the card entry (a name or name + parts). ``saved()``
    gives the model's SavedModel, written on first use and shared by the TFLite and TF.js formats."""
    from export import onnx_export, tfjs_export, tflite_export

    target = directory / FORMATS[fmt]
    if fmt == "onnx":
        onnx_export.keras_to_onnx(model, target)
    elif fmt == "onnx_int8":
        onnx_export.quantize_onnx(files["onnx"], target, calibration)
    elif fmt == "tflite_qat":
        tflite_export.keras_to_tflite(load_keras(qat_path, qat=True), target, "qat")
    elif fmt.startswith("tflite"):
        tflite_export.saved_model_to_tflite(saved(), target, fmt.partition("_")[2] or "fp32", calibration)
    else:
        written = tfjs_export.saved_model_to_tfjs(saved(), target.parent,
                                                  "uint8" if fmt.endswith("uint8") else "float16")
        return {"path": FORMATS[fmt], "parts": [p.relative_to(directory).as_posix() for p in written[1:]]}
    return FORMATS[fmt]


def export_version(registry: Registry, name: str, version: str | None = None, data_dir=None,
                   repeats: int = 30, log=print, formats=None) -> dict:
    """Export ``name:version`` (current by default) to every format (or only ``formats``; ONNX fp32 always),
    measure parity, update the card.

    ``data_dir``: the image folder the version was trained on (its test split joins the evaluation and
    its training split calibrates int8); without it, real photos are used for both (disjoint sets).
    Returns the new card.
    """
    unknown = sorted(set(formats or ()) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    version = registry.resolve(name, version)
    card = registry.card(name, version)
    model = load_keras(registry.file(name, version, "keras"))
    wanted = [fmt for fmt in FORMATS if (formats is None or fmt in formats or fmt == "onnx")
              and (fmt != "tflite_qat" or "qat_keras" in card["files"])]
    qat_path = registry.file(name, version, "qat_keras") if "tflite_qat" in wanted else None
    log(f"{name}:{version}: preparing held-out and calibration images")
    images = heldout.evaluation_set(card, data_dir)
    calibration, source = heldout.calibration_set(card, data_dir)
    with registry.amend(name, version) as draft, tempfile.TemporaryDirectory() as scratch:
        saved = functools.cache(lambda: saved_model.write(model, Path(scratch) / "saved_model"))
        files = {"keras": registry.file(name, version, "keras")}
        for fmt in wanted:
            if fmt in card["files"]:
                files[fmt] = registry.file(name, version, fmt)  # sha256-checked, reused
                continue
            log(f"{name}:{version}: exporting {fmt}")
            draft.card["files"][fmt] = _write(fmt, model, saved, draft.dir, files, calibration, qat_path)
            files[fmt] = draft.dir / FORMATS[fmt]
        log(f"{name}:{version}: parity on {len(images.batch)} held-out images ({repeats} timed runs each)")
        report = parity.report(card, model, files, images, {"source": source, "images": len(calibration)}, repeats)
        draft.card["parity"] = {**card.get("parity", {}), "report": report}
    return registry.card(name, version)
