"""Benchmark: how well the anomaly detectors separate what they should, on real images.

1. Out-of-distribution AUROC per score (Mahalanobis, energy, max-softmax):
   - the default "animals" model: the real cat/dog photos (leave-one-photo-out) vs the real
     out-of-distribution photos — what ``riim calibrate animals`` measures;
   - a Fashion-MNIST model trained here (head only, ``--fashion-per-class`` images per class, 128²): its
     held-out test split vs the same real photos — what ``riim calibrate NAME --data DIR`` measures.
2. Unusual-region localisation (:mod:`export.anomaly_eval`): image and pixel AUROC on held-out crops of
   real textures with pasted-in CutPaste and foreign-texture defects, with the default model's features.

The default model is built and calibrated in ``--models`` if it is not yet (as ``make run`` does). Usage::

    .venv/bin/python benchmarks/bench_anomaly.py [--fashion-per-class 120] [--seeds 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from models.registry import DEFAULT_ROOT, Registry


def default_model_ood(registry: Registry) -> dict:
    from click.testing import CliRunner

    from cli.main import main as riim

    result = CliRunner().invoke(riim, ["models", "default", "--models-dir", str(registry.root)])
    if result.exit_code:
        raise SystemExit(result.output)
    return registry.card("animals")["anomaly"]["ood"]


def fashion_ood(per_class: int, root: Path) -> dict:
    from cli import pipeline
    from export import calibrate
    from models import training_config as config
    from training import importers

    folder = importers.fashion_mnist(root / "fashion", per_class)
    registry = Registry(root / "store")
    settings = config.from_dict({"input_size": 128, "augment": {"copies": 1}, "head": {"epochs": 40}})
    pipeline.train(registry, folder, "fashion", settings)
    return calibrate.calibrate(registry, "fashion", data_dir=folder, echo=lambda *_: None)["ood"]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=DEFAULT_ROOT, help="Registry holding the default model.")
    parser.add_argument("--fashion-per-class", type=int, default=120)
    parser.add_argument("--seeds", type=int, default=3, help="Independent draws of crops and defects.")
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()

    import onnxruntime as ort

    from export import anomaly_eval

    report = {}
    registry = Registry(args.models)
    started = time.perf_counter()
    ood = default_model_ood(registry)
    report["ood_default_model"] = {"auroc": ood["auroc"], "chosen": ood["score"], "held_out": ood["held_out"],
                                   "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({"ood_default_model": report["ood_default_model"]}), flush=True)

    started = time.perf_counter()
    card = registry.card("animals")
    session = ort.InferenceSession(str(registry.file("animals", None, "features")), providers=["CPUExecutionProvider"])
    report["localisation"] = anomaly_eval.evaluate(session, card, card["network"]["feature_layers"],
                                                   seeds=tuple(range(args.seeds)))
    report["localisation"]["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({"localisation": report["localisation"]}, indent=1), flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ood = fashion_ood(args.fashion_per_class, Path(tmp))
    report["ood_fashion_mnist"] = {"auroc": ood["auroc"], "chosen": ood["score"], "held_out": ood["held_out"],
                                   "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({"ood_fashion_mnist": report["ood_fashion_mnist"]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
