"""The CNN lab's typed configuration, in the style of :mod:`models.training_config` (dataclasses with ranges,
loaded from YAML/JSON or a dict, every problem reported by its dotted path)::

    model: {depth: 2, width: 32, dropout: 0.25}
    train: {epochs: 15, learning_rate: 0.001}
    augment: {strength: 0.3}
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from models.training_config import ConfigError, _build, _range, read_mapping


@dataclass
class CnnConfig:
    """``depth`` blocks of Conv(3×3)-BatchNorm-ReLU-MaxPool-Dropout; block i has ``width`` × 2^i filters."""
    depth: int = _range(2, 1, 4)
    width: int = _range(32, 4, 256)
    dropout: float = _range(0.25, 0.0, 0.9)
    dense: int = _range(128, 8, 1024)  # units of the dense layer of the head
    head_dropout: float = _range(0.4, 0.0, 0.9)


@dataclass
class FitConfig:
    epochs: int = _range(15, 1, 500)
    learning_rate: float = _range(1e-3, 1e-7, 1e12)  # large values are allowed on purpose: the lab shows divergence
    batch_size: int = _range(128, 1, 4096)
    validation_fraction: float = _range(0.1, 0.02, 0.5)  # held out from the training split, stratified
    patience: int = _range(4, 1, 500)  # early stopping on validation loss (0 epochs improvement → stop)
    early_stopping: bool = True
    stop_on_nan: bool = True  # a NaN/inf loss ends the run as failed


@dataclass
class LabAugmentConfig:
    """albumentations at training time only; ``strength`` scales every magnitude (0 = off)."""
    strength: float = _range(0.0, 0.0, 1.0)
    horizontal_flip: bool = True


@dataclass
class AlertConfig:
    """Rules checked after every epoch (training/alerts.py); thresholds are the ones a teacher would tune."""
    divergence_factor: float = _range(3.0, 1.01, 1e6)  # loss above factor × its minimum so far
    overfit_epochs: int = _range(3, 1, 100)  # val loss up and train loss down this many epochs in a row
    plateau_epochs: int = _range(4, 1, 100)  # no val-loss improvement of min_delta in this many epochs
    min_delta: float = _range(1e-3, 0.0, 1.0)
    accuracy_threshold: float = _range(0.9, 0.0, 1.0)  # val accuracy reached (0 = no threshold alert)


@dataclass
class DataLimits:
    """Reduced sizes for quick runs and sweeps (0 = the whole split)."""
    train_images: int = _range(0, 0)
    test_images: int = _range(0, 0)


@dataclass
class LabConfig:
    seed: int = _range(0, 0)
    data: DataLimits = field(default_factory=DataLimits)
    model: CnnConfig = field(default_factory=CnnConfig)
    train: FitConfig = field(default_factory=FitConfig)
    augment: LabAugmentConfig = field(default_factory=LabAugmentConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def flat(self) -> dict:
        """``{"model.width": 32, …}``: the parameters as an experiment tracker lists them."""
        out = {"seed": self.seed}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                out.update({f"{section}.{key}": value for key, value in values.items()})
        return out


def from_dict(data: dict) -> LabConfig:
    problems: list[str] = []
    config = _build(LabConfig, data, "", problems)
    if problems:
        raise ConfigError(problems)
    return config


def merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied section by section (for sweeps and the lab form)."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def load(path: str | Path | None) -> LabConfig:
    return LabConfig() if path is None else from_dict(read_mapping(Path(path)))
