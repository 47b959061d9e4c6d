"""A published digits version (training/digits.py) → ONNX (what serving runs), static int8 ONNX and the
TF.js GraphModel the browser runs, each checked against Keras on held-out digits; added with
:meth:`models.registry.Registry.amend`."""
from __future__ import annotations

import time

import numpy as np

from export import onnx_export, tfjs_export
from models import metrics
from models.registry import Registry

FILES = {"onnx": "model.onnx", "onnx_int8": "model.int8.onnx", "tfjs": "tfjs/model.json"}


def _compare(session_outputs: dict, expected: dict, labels: np.ndarray | None) -> dict:
    want, got = expected["probabilities"], session_outputs["probabilities"]
    row = {"max_abs_diff": {name: round(metrics.max_abs_difference(expected[name], session_outputs[name]), 7)
                            for name in expected},
           "top1_agreement": round(metrics.top1_agreement(want, got), 4)}
    if labels is not None:
        row["accuracy"] = round(float((got.argmax(axis=1) == labels).mean()), 4)
    return row


def _run(path, batch: np.ndarray) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": batch.astype(np.float32)})))


def add_formats(registry: Registry, name: str, version: str, model, check: np.ndarray, labels: np.ndarray,
                calibration: np.ndarray, log=print) -> dict:
    """Add ``onnx``, ``onnx_int8`` and ``tfjs`` to ``name:version``; ``check``/``labels`` are held-out digits
    (28×28 inputs) for the parity rows, ``calibration`` training digits for int8. Returns the new card."""
    expected = {key: np.asarray(value) for key, value in model.predict(check, batch_size=256, verbose=0).items()}
    with registry.amend(name, version) as draft:
        started = time.perf_counter()
        log(f"{name}:{version}: ONNX")
        names = onnx_export.keras_to_onnx(model, draft.dir / FILES["onnx"])
        if sorted(names) != sorted(expected):
            raise RuntimeError(f"ONNX outputs {names} do not match Keras outputs {sorted(expected)}")
        fp32 = _compare(_run(draft.dir / FILES["onnx"], check), expected, labels)
        log(f"{name}:{version}: int8 ONNX (calibrated on {len(calibration)} training digits)")
        onnx_export.quantize_onnx(draft.dir / FILES["onnx"], draft.dir / FILES["onnx_int8"], calibration)
        int8 = _compare(_run(draft.dir / FILES["onnx_int8"], check), expected, labels)
        log(f"{name}:{version}: TF.js GraphModel")
        written = tfjs_export.keras_to_tfjs(model, draft.dir / "tfjs", "float16")
        draft.card["files"].update(onnx=FILES["onnx"], onnx_int8=FILES["onnx_int8"],
                                   tfjs={"path": FILES["tfjs"],
                                         "parts": [p.relative_to(draft.dir).as_posix() for p in written[1:]]})
        draft.card["parity"] = {**draft.card.get("parity", {}),
                                "onnx_fp32_vs_keras": {"images": len(check), **fp32},
                                "onnx_int8_vs_keras": {"images": len(check), **int8},
                                "export_seconds": round(time.perf_counter() - started, 1)}
    return registry.card(name, version)
