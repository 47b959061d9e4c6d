"""Export a CNN-lab model (task ``small-image-classification``): ONNX (what serving runs) and TF.js (the
browser), checked on raw test images sent through the card's transforms (:mod:`models.transforms`), the
steps serving and the browser apply — so the check covers the pipeline as well as the conversion."""
from __future__ import annotations

import time

import numpy as np

from export import onnx_export, tfjs_export
from models import transforms
from models.registry import Registry


def export_lab(registry: Registry, name: str, version: str, model, raw_images: np.ndarray) -> dict:
    """Add model.onnx and tfjs/ to ``name:version``; returns the card's ``parity.onnx_vs_keras``."""
    import onnxruntime as ort

    card = registry.card(name, version)
    batch = transforms.Pipeline.from_card(card["transforms"]).batch(raw_images).astype(np.float32)
    with registry.amend(name, version) as draft:
        started = time.perf_counter()
        onnx_export.keras_to_onnx(model, draft.dir / "model.onnx")
        session = ort.InferenceSession(str(draft.dir / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(["probabilities"], {"image": batch})[0]
        want = model.predict(batch, verbose=0)
        written = tfjs_export.keras_to_tfjs(model, draft.dir / "tfjs", "float16")
        check = {"images": len(batch), "max_abs_diff": float(np.max(np.abs(got - want))),
                 "top1_agreement": float(np.mean(got.argmax(1) == want.argmax(1))),
                 "export_seconds": round(time.perf_counter() - started, 1)}
        draft.card["parity"] = {**draft.card.get("parity", {}), "onnx_vs_keras": check}
        draft.card["files"]["onnx"] = "model.onnx"
        draft.card["files"]["tfjs"] = {"path": "tfjs/model.json",
                                       "parts": [p.relative_to(draft.dir).as_posix() for p in written[1:]]}
    return check
