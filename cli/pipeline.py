"""Steps that span layers: train or build (``training/``) → ONNX, other formats, calibration
(``export/``) → promote (``models/``). A version is promoted only once serving can run it."""
from __future__ import annotations

from pathlib import Path

from models.registry import Registry
from models.training_config import TrainConfig


def train(registry: Registry, data_dir: Path, name: str, config: TrainConfig, work_dir: Path | None = None,
          progress=None, promote: bool | None = None) -> str | None:
    """Fine-tune on ``data_dir``, publish, add the ONNX model, promote (by default only the first version).
    On a worker of a cluster other than the chief, only trains: returns ``None``."""
    from export import onnx_export
    from training import finetune, tracking
    from training.progress import Progress

    progress = progress or Progress(bars=False)
    with tracking.start("riim-train", name, tracking.flatten(config.to_dict()),
                        {"riim.kind": "train", "riim.model": name, "riim.data": data_dir}) as run:
        result = finetune.train(data_dir, config, work_dir, progress)
        if not result.publishes:
            run.set_tags({"riim.role": "worker (the chief publishes)"})
            progress.finish(version=None)
            return None
        version = finetune.publish(registry, name, result, progress)
        onnx_export.add_onnx(registry, name, version, result.model, result.check_images)
        if promote or (promote is None and registry.current(name) is None):
            registry.promote(name, version)
        track_finetune(run, registry, name, version)
    progress.finish(version=version, test_accuracy=result.card["metrics"].get("test", {}).get("accuracy"))
    return version


def track_finetune(run, registry: Registry, name: str, version: str) -> None:
    """What `riim train` leaves in its MLflow run (training/tracking.py): per-epoch curves of each stage,
    test metrics, the card, curves.png and the test confusion matrix."""
    from training import tracking

    card = registry.card(name, version)
    metrics = card["metrics"]
    tracking.log_history(run, metrics.get("curves", {}))
    if "test" in metrics:
        run.log_metrics({"test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"]})
    run.log_metrics({"train_seconds": card["training"]["seconds"]["total"], "parameters": card["backbone"]["parameters"]})
    run.set_tags({"riim.version": version})
    curves = registry.path(name, version) / "curves.png"
    confusion = (metrics["test"]["confusion"]["matrix"], metrics["test"]["confusion"]["labels"]) if "test" in metrics else None
    tracking.log_card_and_plots(run, card, curves if curves.is_file() else None, confusion)


def build_default(registry: Registry, check_images=None, full: bool = True, repeats: int = 10,
                  echo=print) -> str:
    """Build the default "animals" model, add ONNX (and with ``full`` every format and the anomaly
    calibration), then promote it; returns the version."""
    from export import onnx_export
    from training import default_model

    version, model = default_model.build(registry)
    onnx_export.add_onnx(registry, default_model.NAME, version, model, check_images or default_model.check_photos())
    if full:
        complete_default(registry, version, repeats, echo)
    registry.promote(default_model.NAME, version)
    return version


def ensure_default(registry: Registry, export: bool = True, calibrate: bool = True, echo=print) -> str:
    """The current default version (built first if there is none), exported and calibrated as asked."""
    from training import default_model

    version = default_model.current(registry)
    if version is None:
        version = build_default(registry, full=export and calibrate, echo=echo)
    complete_default(registry, version, export=export, calibrate=calibrate, echo=echo)
    return version


def complete_default(registry: Registry, version: str, export: bool = True, calibrate: bool = True,
                     repeats: int = 10, echo=print) -> list[str]:
    """Export and calibrate a default version where it lacks them (what the browser and the anomaly
    views need); returns the steps done."""
    from export import calibrate as calibration
    from export import exporter
    from training import default_model

    name, done = default_model.NAME, []
    if export and "tfjs" not in registry.card(name, version)["files"]:
        exporter.export_version(registry, name, version, repeats=repeats, log=echo)
        done.append("exported")
    if calibrate and "anomaly" not in registry.card(name, version):
        calibration.calibrate(registry, name, version, None, echo=echo)
        done.append("calibrated")
    return done
