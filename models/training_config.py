"""The typed training configuration: dataclasses with defaults, loaded from YAML or JSON and validated.

One :class:`TrainConfig` travels through the whole run and is saved in the model card, so a version can be
reproduced from its card alone. Every field has a default; a config file only lists what it changes::

    input_size: 128
    finetune: {enabled: true, trainable_blocks: 2}
    pruning: {sparsities: [0.5]}

Validation collects every problem (unknown key, wrong type, value out of range) and raises one
:class:`ConfigError` that names each field by its dotted path, e.g. ``head.epochs: must be >= 1, got 0``.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every bad field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid training config:\n" + "\n".join(f"  - {p}" for p in problems))


def _range(default, low=None, high=None, **extra):
    """A field with an inclusive [low, high] range checked by :func:`from_dict`."""
    return field(default=default, metadata={"low": low, "high": high, **extra})


@dataclass
class DataConfig:
    """How the image folder is checked and split (fractions of the unique images of each class)."""
    min_per_class: int = _range(5, 2)
    validation_fraction: float = _range(0.15, 0.0, 0.5)
    test_fraction: float = _range(0.15, 0.0, 0.5)


@dataclass
class AugmentConfig:
    """albumentations transforms applied to training images (probabilities and magnitudes)."""
    enabled: bool = True
    copies: int = _range(2, 1, 20)  # augmented copies of each training image per run (embeddings are cached)
    horizontal_flip: float = _range(0.5, 0.0, 1.0)
    affine: float = _range(0.5, 0.0, 1.0)  # probability of shift / scale / rotate
    max_rotate: float = _range(15.0, 0.0, 180.0)  # degrees
    max_shift: float = _range(0.08, 0.0, 0.5)  # fraction of the side
    max_scale: float = _range(0.1, 0.0, 0.5)  # ± relative zoom
    crop: float = _range(0.3, 0.0, 1.0)  # probability of a random resized crop
    crop_min_area: float = _range(0.6, 0.05, 1.0)
    color_jitter: float = _range(0.5, 0.0, 1.0)
    brightness: float = _range(0.2, 0.0, 1.0)
    contrast: float = _range(0.2, 0.0, 1.0)
    saturation: float = _range(0.2, 0.0, 1.0)
    blur: float = _range(0.1, 0.0, 1.0)
    noise: float = _range(0.1, 0.0, 1.0)
    coarse_dropout: float = _range(0.2, 0.0, 1.0)


@dataclass
class HeadConfig:
    """Stage 1: a new Dropout → Dense(softmax) head on cached embeddings of the frozen backbone."""
    epochs: int = _range(60, 1, 1000)
    learning_rate: float = _range(1e-3, 1e-6, 1.0)
    batch_size: int = _range(32, 1, 1024)
    dropout: float = _range(0.2, 0.0, 0.9)
    patience: int = _range(8, 1, 1000)  # early stopping on validation loss


@dataclass
class FinetuneConfig:
    """Stage 2: unfreeze the last blocks (BatchNorm stays frozen) and train them with a lower rate.
    ``label_smoothing`` (0: plain cross-entropy) keeps the unfrozen blocks from growing over-confident; 0.1 was
    chosen on a validation split (docs/training.md, "Label smoothing")."""
    enabled: bool = False
    trainable_blocks: int = _range(2, 1, 16)
    epochs: int = _range(10, 1, 1000)
    learning_rate: float = _range(1e-4, 1e-7, 1.0)
    batch_size: int = _range(32, 1, 1024)
    patience: int = _range(3, 1, 1000)
    label_smoothing: float = _range(0.1, 0.0, 0.5)


@dataclass
class CrossValConfig:
    """Stratified k-fold of the stage-1 recipe; ``folds: 0`` skips it, ``leave_one_out`` for tiny sets."""
    folds: int = _range(0, 0, 50)
    leave_one_out: bool = False


@dataclass
class PruningConfig:
    """Magnitude pruning (polynomial decay to each target sparsity) of the trained model, for the table."""
    sparsities: list[float] = field(default_factory=list, metadata={"low": 0.05, "high": 0.95})
    epochs: int = _range(2, 1, 100)
    learning_rate: float = _range(1e-4, 1e-7, 1.0)


@dataclass
class QatConfig:
    """Quantization-aware training of the trained model (the export step compares it with PTQ)."""
    enabled: bool = False
    epochs: int = _range(1, 1, 100)
    learning_rate: float = _range(1e-5, 1e-8, 1.0)


HOST_PORT = r"[A-Za-z0-9.-]+:[0-9]{1,5}"


@dataclass
class DistributeConfig:
    """Training on several machines (:mod:`training.distribute`): every worker runs the same command with the
    same ``cluster`` and its own ``task_index``; worker 0, the chief, publishes. No cluster: one machine."""
    cluster: list[str] = field(default_factory=list, metadata={"pattern": HOST_PORT, "what": "host:port"})
    task_index: int = _range(0, 0)


@dataclass
class TrainConfig:
    input_size: int = _range(224, 64, 224)
    seed: int = _range(0, 0)
    class_weights: bool = True  # weight the loss by inverse class frequency
    unknown_threshold: float = _range(0.5, 0.0, 1.0)  # card: "unknown" when max probability is below
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    crossval: CrossValConfig = field(default_factory=CrossValConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_value(value, kind, meta: dict, where: str, problems: list[str]):
    """``value`` converted to ``kind`` (int, float, bool, str, list) or ``None`` with a problem noted."""
    if typing.get_origin(kind) is list:
        if not isinstance(value, list):
            problems.append(f"{where}: must be a list, got {value!r}")
            return None
        items = [_check_value(item, typing.get_args(kind)[0], meta, f"{where}[{i}]", problems)
                 for i, item in enumerate(value)]
        return None if None in items else items
    if kind is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: must be true or false, got {value!r}")
            return None
        return value
    if kind is str:
        if not isinstance(value, str) or not re.fullmatch(meta["pattern"], value):
            problems.append(f"{where}: must be {meta['what']}, got {value!r}")
            return None
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not (isinstance(value, int) or value.is_integer())):  # 4.0 is an integer, as in JSON
        problems.append(f"{where}: must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        return None
    if meta.get("low") is not None and value < meta["low"]:
        problems.append(f"{where}: must be >= {meta['low']}, got {value}")
        return None
    if meta.get("high") is not None and value > meta["high"]:
        problems.append(f"{where}: must be <= {meta['high']}, got {value}")
        return None
    return kind(value)


def _build(cls, data, prefix: str, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or '(config)'}: must be a mapping, got {data!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown setting (known: {', '.join(known)})")
    values = {}
    for name, spec in known.items():
        if name not in data:
            continue
        kind, where = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(kind):
            values[name] = _build(kind, data[name], f"{where}.", problems)
        else:
            checked = _check_value(data[name], kind, spec.metadata, where, problems)
            if checked is not None:
                values[name] = checked
    return cls(**values)


def from_dict(data: dict) -> TrainConfig:
    """A validated :class:`TrainConfig`; raises :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    config = _build(TrainConfig, data, "", problems)
    if not problems and config.data.validation_fraction + config.data.test_fraction >= 0.8:
        problems.append("data: validation_fraction + test_fraction must be < 0.8 (training needs images)")
    if not problems:
        problems += _distribute_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _distribute_problems(config: TrainConfig) -> list[str]:
    """A cluster trains the head (stage 1) only: the other stages would run unsharded on every worker."""
    cluster, index = config.distribute.cluster, config.distribute.task_index
    if not cluster:
        return []
    problems = [] if index < len(cluster) else [f"distribute.task_index: must be < {len(cluster)} "
                                                f"(the number of workers in distribute.cluster), got {index}"]
    single = {"finetune.enabled": config.finetune.enabled, "crossval": bool(config.crossval.folds
              or config.crossval.leave_one_out), "pruning.sparsities": bool(config.pruning.sparsities),
              "qat.enabled": config.qat.enabled}
    problems += [f"{name}: not available with distribute.cluster (a cluster trains the head only)"
                 for name, used in single.items() if used]
    return problems


def load(path: str | Path | None) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON file; ``None`` gives the defaults."""
    return TrainConfig() if path is None else from_dict(read_mapping(Path(path)))


def read_mapping(path: Path) -> dict:
    """The content of a YAML or JSON config file (``{}`` when empty); :class:`ConfigError` naming the file."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read ({error.strerror})"]) from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError([f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})"]) from None
    return data if data is not None else {}
