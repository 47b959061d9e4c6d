"""``configuracion.json`` of the time-series trainer: the source document's Spanish keys (English aliases
accepted), validated by ``series_config.schema.json`` with errors that name the key, paths resolved
against the config file's folder."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("series_config.schema.json")
ALIASES = {  # English → the document's Spanish key
    "data_path": "ruta_datos", "model_path": "ruta_modelo", "checkpoints_path": "ruta_checkpoints",
    "predictions_path": "ruta_predicciones", "window": "ventana", "training_parameters": "parametros_entrenamiento",
    "model": "modelo", "name": "nombre", "column": "columna", "seasonality": "estacionalidad",
    "cross_validation": "validacion_cruzada", "validation_fraction": "particion_validacion",
    "test_fraction": "particion_prueba", "formats": "formatos", "seed": "semilla", "patience": "paciencia",
}
DEFAULT_NAMES = {"lstm": "series-price", "gru": "series-spread", "cnn": "series-cnn", "autoencoder": "series-anomaly"}
TASKS = {"lstm": "time-series-forecasting", "gru": "time-series-forecasting", "cnn": "time-series-forecasting",
         "autoencoder": "time-series-anomaly"}


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuracion.json:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class SeriesConfig:
    data: Path
    model_dir: Path
    checkpoints: Path
    predictions: Path
    windows: tuple[int, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    model: str
    name: str
    column: str | None
    season: int
    folds: int
    validation_fraction: float
    test_fraction: float
    formats: tuple[str, ...]
    seed: int
    source: dict  # the validated document (Spanish keys), saved in the card

    @property
    def task(self) -> str:
        return TASKS[self.model]


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _translate(data: dict, problems: list[str], where: str = "") -> dict:
    """English aliases → Spanish keys (recursively for the training parameters); both given is an error."""
    out = {}
    for key, value in data.items():
        spanish = ALIASES.get(key, key)
        if spanish in out:
            problems.append(f"{where}{spanish}: given twice (as {spanish!r} and its alias {key!r})")
        out[spanish] = _translate(value, problems, f"{spanish}.") if isinstance(value, dict) else value
    return out


def validate(data) -> dict:
    """The document with Spanish keys, or :class:`ConfigError` naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(["(config): must be a JSON object"])
    problems: list[str] = []
    data = _translate(data, problems)
    validator = jsonschema.Draft202012Validator(schema())
    for error in validator.iter_errors(data):
        path = ".".join(str(part) for part in error.absolute_path) or "(config)"
        if error.validator == "oneOf" and error.absolute_path and error.absolute_path[-1] == "ventana":
            message = "must be an integer from 4 to 1000 or a list of such integers"
        else:
            message = error.message
        problems.append(f"{path}: {message}")
    if problems:
        raise ConfigError(sorted(problems))
    return data


def from_dict(data: dict, base: Path) -> SeriesConfig:
    """Validate ``data`` and resolve its relative paths against ``base`` (the config file's folder)."""
    data = validate(data)
    params = data["parametros_entrenamiento"]
    model = data.get("modelo", "lstm")
    windows = data["ventana"] if isinstance(data["ventana"], list) else [data["ventana"]]
    path = lambda key: (base / Path(data[key].replace("\\", "/"))).resolve()
    return SeriesConfig(
        data=path("ruta_datos"), model_dir=path("ruta_modelo"), checkpoints=path("ruta_checkpoints"),
        predictions=path("ruta_predicciones"), windows=tuple(windows), epochs=params["epochs"],
        batch_size=params["batch_size"], learning_rate=float(params["learning_rate"]),
        patience=params.get("paciencia", 0), model=model, name=data.get("nombre", DEFAULT_NAMES[model]),
        column=data.get("columna"), season=data.get("estacionalidad", 1), folds=data.get("validacion_cruzada", 3),
        validation_fraction=data.get("particion_validacion", 0.15), test_fraction=data.get("particion_prueba", 0.15),
        formats=tuple(data.get("formatos", ["onnx", "tfjs"])), seed=data.get("semilla", 0), source=data)


def load(path: str | Path) -> SeriesConfig:
    """Read and validate a ``configuracion.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"(config): file {path} does not exist"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError([f"(config): {path} is not valid JSON ({error})"]) from None
    return from_dict(data, path.resolve().parent)
