"""``riim calibrate NAME[:VERSION]``: fit the anomaly detectors of a version and write them into it.

What is fitted, from the version's in-distribution images (run through the version's own ONNX model):

- :class:`MahalanobisOOD` — class-conditional Gaussians with one shared covariance, shrunk with
  Ledoit–Wolf, on the 1280-d embedding (scikit-learn estimator: ``fit`` / ``score_samples``, learned
  attributes end in ``_``). It is compared with the energy and max-softmax scores; the score with the best
  AUROC (held-out in-distribution images vs the real out-of-distribution photos of
  :mod:`training.real_photos`) becomes the card's unknown rule, at the threshold that keeps 95 % of the
  held-out in-distribution images (95 % true-positive rate).
- :class:`PatchGaussian` — PaDiM-style: a mean per feature-grid position and a shared shrunk covariance
  of the patch vectors (the three finest feature maps, strides 2–8, concatenated on the stride-8 grid) →
  a map of unusual regions; the image is unusual when the mean of its top 5 % patch distances is above a
  threshold set, like the OOD one, at 95 % true-positive rate on held-out in-distribution images.

Where the images come from:

- the default "animals" model: the real cat/dog photos (8 on a set-up machine) and augmented copies. That
  is very little data: thresholds and AUROCs come from leave-one-photo-out and are rough estimates;
- a fine-tuned model: ``--data FOLDER``, the folder it was trained on. The split is recomputed from the
  card's config and checked against the split hashes in the card; detectors are fitted on the training
  split, the threshold set on the validation split and the AUROC measured on the test split.

Calibration runs on the exported ONNX model, after ``riim export`` has written it. The version gets
``ood.npz``, ``patches.npz``, ``network.json`` (graph description) and ``features.onnx`` (the model plus
intermediate outputs) through :meth:`models.registry.Registry.amend`, which never replaces a file: a
version is calibrated once. Serving scores with numpy from these files (:mod:`models.anomaly`):
scikit-learn is not needed there.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import LedoitWolf, ShrunkCovariance
from sklearn.metrics import roc_auc_score

from models.anomaly import (
    OOD_SCORES,
    mahalanobis,
    ood_scores,
    patch_distances,
    patch_vectors,
    region_distances,
    region_scores,
    resample,
)
from models.preprocess import normalize, to_model_pixels
from models.registry import Registry

TPR = 0.95
REGION_TOP_FRACTION = 0.05  # a defect covers a few per cent of an image
BATCH = 16
FILES = {"ood": "ood.npz", "patches": "patches.npz", "network": "network.json", "features": "features.onnx"}


# --- estimators (scikit-learn style) -----------------------------------------------------------------
class MahalanobisOOD(BaseEstimator):
    """Class-conditional Gaussians with a shared Ledoit–Wolf covariance; ``score_samples`` is minus the
    squared distance to the nearest class mean (higher = more typical, the scikit-learn convention)."""

    def __init__(self, shrinkage: float | None = None):
        self.shrinkage = shrinkage  # None: Ledoit–Wolf's optimal shrinkage

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        self.classes_ = np.unique(y)
        self.means_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        centred = X - self.means_[np.searchsorted(self.classes_, y)]
        estimator = (LedoitWolf(assume_centered=True) if self.shrinkage is None
                     else ShrunkCovariance(shrinkage=self.shrinkage, assume_centered=True)).fit(centred)
        self.shrinkage_ = float(getattr(estimator, "shrinkage_", self.shrinkage))
        self.precision_ = estimator.precision_
        return self

    def score_samples(self, X):
        return -mahalanobis(np.asarray(X, dtype=np.float32), self.means_, self.precision_)

    def parameters(self) -> dict:
        return {"means": self.means_.astype(np.float32), "precision": self.precision_.astype(np.float32)}


class PatchGaussian(BaseEstimator):
    """PaDiM-style patch model on (N, P, D) patch vectors: per-position means pulled towards the global
    mean by ``position_shrinkage`` (0 = pure per position, 1 = one mean for all), shared Ledoit–Wolf
    covariance. ``score_samples`` is minus the distance of every patch, shape (N, P)."""

    def __init__(self, position_shrinkage: float = 0.0):
        self.position_shrinkage = position_shrinkage

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        if not 0.0 <= self.position_shrinkage <= 1.0:
            raise ValueError("position_shrinkage must be in [0, 1]")
        per_position, overall = X.mean(axis=0), X.mean(axis=(0, 1))
        self.means_ = (1 - self.position_shrinkage) * per_position + self.position_shrinkage * overall
        estimator = LedoitWolf(assume_centered=True).fit((X - self.means_[None]).reshape(-1, X.shape[2]))
        self.shrinkage_ = float(estimator.shrinkage_)
        self.precision_ = estimator.precision_
        return self

    def score_samples(self, X):
        return -patch_distances(np.asarray(X, dtype=np.float32), self.means_.astype(np.float32),
                                self.precision_.astype(np.float32))

    def parameters(self, grid: int) -> dict:
        return {"means": self.means_.astype(np.float32), "precision": self.precision_.astype(np.float32),
                "grid": np.array(grid)}


# --- running the version's ONNX model ----------------------------------------------------------------
@dataclass
class Outputs:
    """What calibration needs from the network for a batch of images."""
    embedding: np.ndarray
    probabilities: np.ndarray
    patches: list[np.ndarray]  # NCHW feature maps used for unusual regions, pooled to the region grid


def region_layers(feature_layers: list[dict]) -> list[dict]:
    """Feature layers for patch statistics: the three finest (strides 2, 4, 8 — PaDiM takes ResNet's first
    three stages). Small texture changes show at these resolutions; deeper maps blur them away."""
    return feature_layers[:3]


def region_grid(feature_layers: list[dict]) -> int:
    """Side of the grid the patch vectors live on: that of the coarsest region layer."""
    return region_layers(feature_layers)[-1]["height"]


def run_features(session, card: dict, pixels: np.ndarray, feature_layers: list[dict]) -> Outputs:
    """Run ``features.onnx`` on uint8 model-size pixels (N, S, S, 3) in batches."""
    names = [card["outputs"]["embedding"], card["outputs"]["probabilities"]]
    names += [layer["output"] for layer in region_layers(feature_layers)]
    grid = region_grid(feature_layers)
    parts = []
    for start in range(0, len(pixels), BATCH):  # fine maps pooled per batch: a fraction of the memory
        part = session.run(names, {"image": normalize(pixels[start:start + BATCH], card["input"])})
        parts.append(part[:2] + [resample(f, grid) for f in part[2:]])
    joined = [np.concatenate([part[k] for part in parts]) for k in range(len(names))]
    return Outputs(joined[0], joined[1], joined[2:])


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve for telling ``out_scores`` (positives) from ``in_scores`` (higher = out)."""
    labels = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(labels, np.r_[in_scores, out_scores]))


def threshold_at_tpr(in_scores, tpr: float = TPR) -> float:
    """A threshold that keeps at least ``tpr`` of the in-distribution scores at or below it, halfway between
    the score at that quantile and the next larger one: no held-out image sits on the boundary, where
    float rounding (batch size, float16 in the browser) would flip its answer."""
    scores = np.sort(np.asarray(in_scores, dtype=np.float64))
    at = float(scores[min(len(scores), max(1, math.ceil(tpr * len(scores) - 1e-9))) - 1])
    above = scores[scores > at]
    spread = float(scores.max() - scores.min())
    return (at + float(above.min())) / 2 if above.size else at + 0.05 * (spread or abs(at) or 1.0)


# --- in-distribution data ----------------------------------------------------------------------------
class CalibrationError(ValueError):
    """The version cannot be calibrated as asked; the message says why and what to do."""


@dataclass
class InDistribution:
    """Original in-distribution images and how they are held out."""
    pixels: np.ndarray  # uint8 (N, S, S, 3)
    labels: np.ndarray  # class index per image
    folds: list[tuple[np.ndarray, np.ndarray]]  # (fit indices, held-out indices): threshold from held-outs
    report: np.ndarray | None  # held-out indices for the AUROC (None: the folds' held-outs)
    description: dict  # {"es", "en"}: where the images come from


def default_photos(card: dict) -> InDistribution:
    """The real cat/dog photos, each held out in turn (leave-one-photo-out)."""
    from training import real_photos

    photos = real_photos.cat_dog_photos()
    ids = np.arange(len(photos))
    return InDistribution(
        np.stack([to_model_pixels(p.image, card["input"]) for p in photos]),
        np.array([card["labels"].index(p.label) for p in photos]),
        [(np.delete(ids, i), ids[i:i + 1]) for i in ids], None,
        {"es": f"{len(photos)} fotos reales de gatos y perros (dejando una fuera cada vez): muy pocos datos, "
               "los umbrales son aproximados.",
         "en": f"{len(photos)} real cat and dog photos (leaving one out at a time): very little data, the "
               "thresholds are rough."})


def folder_images(card: dict, root: Path, max_per_split: int, seed: int = 0) -> InDistribution:
    """The training folder of a fine-tuned version, split again as the card says and checked against it."""
    from training import data

    training = card.get("training", {})
    if "splits" not in training or "config" not in training:
        raise CalibrationError(f"{card['name']}:{card['version']} has no training splits in its card")
    config = training["config"]
    dataset = data.scan(root, config["data"]["min_per_class"])
    if dataset.classes != card["labels"]:
        raise CalibrationError(f"{root} has classes {dataset.classes}, the model {card['labels']}")
    splits = data.split(dataset, config["data"]["validation_fraction"], config["data"]["test_fraction"],
                        config["seed"])
    if data.split_hashes(dataset, splits) != training["splits"]:
        raise CalibrationError(f"{root} is not the data {card['name']}:{card['version']} was trained on "
                               "(its split hashes differ from the card's)")
    rng = np.random.default_rng(seed)
    chosen = {name: np.sort(rng.permutation(ids)[:max_per_split]) for name, ids in splits.items()}
    order = np.concatenate([chosen[name] for name in data.SPLITS]).astype(int)
    position = {name: np.arange(sum(len(chosen[n]) for n in data.SPLITS[:k]),
                                sum(len(chosen[n]) for n in data.SPLITS[:k + 1]))
                for k, name in enumerate(data.SPLITS)}
    held_out = position["validation"] if len(position["validation"]) else position["test"]
    return InDistribution(
        data.load_pixels(dataset, card["input"], order), dataset.labels[order],
        [(position["train"], held_out)], position["test"] if len(position["test"]) else None,
        {"es": f"carpeta de entrenamiento ({len(order)} imágenes): ajuste con «train», umbral con "
               "«validation», AUROC con «test».",
         "en": f"training folder ({len(order)} images): fitted on 'train', threshold on 'validation', "
               "AUROC on 'test'."})


def ood_photos(card: dict) -> np.ndarray:
    """Real photos of none of the model's classes (docs/design.md, real data), as uint8 model pixels."""
    from training import real_photos

    photos = [p for p in real_photos.cat_dog_photos() + real_photos.ood_photos() if p.label not in card["labels"]]
    return np.stack([to_model_pixels(p.image, card["input"]) for p in photos])


def augmented(pixels: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """``copies`` augmented versions of every image, (N * copies, S, S, 3), image-major."""
    from models.training_config import AugmentConfig
    from training import augment

    transform = augment.pipeline(AugmentConfig(), pixels.shape[1], seed)
    return np.stack([transform(image=image)["image"] for image in pixels for _ in range(copies)])


# --- fitting and choosing ----------------------------------------------------------------------------
def _subset(outputs: Outputs, ids) -> Outputs:
    return Outputs(outputs.embedding[ids], outputs.probabilities[ids], [f[ids] for f in outputs.patches])


def _join(*parts: Outputs) -> Outputs:
    return Outputs(np.concatenate([p.embedding for p in parts]), np.concatenate([p.probabilities for p in parts]),
                   [np.concatenate([p.patches[k] for p in parts]) for k in range(len(parts[0].patches))])


def fit_set(originals: Outputs, augmentations: Outputs | None, labels, copies: int, ids):
    """Outputs and labels of images ``ids`` plus their augmented copies."""
    if augmentations is None or copies == 0:
        return _subset(originals, ids), labels[ids]
    copy_ids = (np.asarray(ids)[:, None] * copies + np.arange(copies)).ravel()
    return _join(_subset(originals, ids), _subset(augmentations, copy_ids)), np.r_[labels[ids], labels[copy_ids // copies]]


def all_ood_scores(card, outputs: Outputs, head, stats) -> dict[str, np.ndarray]:
    return {method: ood_scores(method, card, outputs.embedding, outputs.probabilities, head, stats)
            for method in OOD_SCORES if head is not None or method != "energy"}


def calibrate(registry: Registry, name: str, version: str | None = None, data_dir: str | Path | None = None,
              copies: int = 8, max_per_split: int = 600, position_shrinkage: float = 0.0, seed: int = 0,
              echo=print) -> dict:
    """Fit, evaluate and store the anomaly detectors of ``name:version``; returns the card's ``anomaly``."""
    import onnxruntime as ort

    from export import onnx_graph

    version = registry.resolve(name, version)
    card = registry.card(name, version)
    if "anomaly" in card:
        raise CalibrationError(f"{name}:{version} is already calibrated and versions are immutable; "
                               "publish a new version to calibrate again")
    if data_dir is None and not card.get("label_mapping"):
        raise CalibrationError(f"{name}:{version} was trained on your images: give the folder with --data")
    ind = default_photos(card) if data_dir is None else folder_images(card, Path(data_dir), max_per_split, seed)
    copies = copies if data_dir is None else 0

    echo("describing the ONNX graph and writing the feature-map variant")
    onnx_path = registry.file(name, version, "onnx")
    network = onnx_graph.describe(onnx_path)
    with registry.amend(name, version) as draft:
        features_tmp = draft.dir / FILES["features"]
        layers = onnx_graph.with_feature_outputs(onnx_path, features_tmp, onnx_graph.feature_blocks(network))
        session = ort.InferenceSession(str(features_tmp), providers=["CPUExecutionProvider"])
        echo(f"running the network on {len(ind.pixels)} in-distribution images (+{copies} augmented copies each)")
        originals = run_features(session, card, ind.pixels, layers)
        augmentations = run_features(session, card, augmented(ind.pixels, copies, seed), layers) if copies else None
        outside = run_features(session, card, ood_photos(card), layers)
        head = dict(np.load(registry.file(name, version, "head"))) if "head" in card["files"] else None
        grid = region_grid(layers)

        echo(f"fitting on {len(ind.folds)} fold(s)")
        held_in, held_regions, fold_ood = {}, [], {}
        for fit_ids, held in ind.folds:
            fit, labels = fit_set(originals, augmentations, ind.labels, copies, fit_ids)
            stats = MahalanobisOOD().fit(fit.embedding, labels).parameters()
            patches = PatchGaussian(position_shrinkage).fit(patch_vectors(fit.patches, grid))
            for scores, outputs in ((held_in, _subset(originals, held)), (fold_ood, outside)):
                for method, values in all_ood_scores(card, outputs, head, stats).items():
                    scores.setdefault(method, []).append(values)
            distances = region_distances(_subset(originals, held).patches, patches.parameters(grid))
            held_regions.append(region_scores(distances, REGION_TOP_FRACTION))
        held_in = {m: np.concatenate(v) for m, v in held_in.items()}
        fold_ood = {m: np.concatenate(v) for m, v in fold_ood.items()}

        final_ids = np.unique(np.concatenate([fit_ids for fit_ids, _ in ind.folds]))
        final, final_labels = fit_set(originals, augmentations, ind.labels, copies, final_ids)
        ood = MahalanobisOOD().fit(final.embedding, final_labels)
        patches = PatchGaussian(position_shrinkage).fit(patch_vectors(final.patches, grid))
        report_in, report_ood = held_in, fold_ood
        if ind.report is not None:  # a test split, scored by the final detectors
            report_in = all_ood_scores(card, _subset(originals, ind.report), head, ood.parameters())
            report_ood = all_ood_scores(card, outside, head, ood.parameters())
        aurocs = {method: round(auroc(report_in[method], report_ood[method]), 4) for method in report_in}
        best = max(aurocs, key=lambda m: (aurocs[m], -OOD_SCORES.index(m)))
        threshold = threshold_at_tpr(held_in[best])
        region_threshold = threshold_at_tpr(np.concatenate(held_regions))
        echo(f"OOD AUROC {aurocs} → {best} (threshold {threshold:.4g} at {TPR:.0%} TPR)")

        np.savez(draft.dir / FILES["ood"], **ood.parameters())
        np.savez(draft.dir / FILES["patches"], **patches.parameters(grid))
        (draft.dir / FILES["network"]).write_text(json.dumps({**network, "feature_layers": layers}, indent=1))
        anomaly = {
            "calibrated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "data": {"description": ind.description, "images": int(len(ind.pixels)), "augmented_copies": copies,
                     "out_of_distribution_photos": int(len(outside.embedding))},
            "ood": {"score": best, "threshold": threshold, "tpr": TPR, "auroc": aurocs,
                    "shrinkage": round(ood.shrinkage_, 4), "held_out": int(len(held_in[best]))},
            "regions": {"method": "padim", "threshold": region_threshold, "tpr": TPR, "grid": int(grid),
                        "top_fraction": REGION_TOP_FRACTION,
                        "layers": [layer["block"] for layer in region_layers(layers)],
                        "position_shrinkage": position_shrinkage, "shrinkage": round(patches.shrinkage_, 4)},
        }
        draft.card["files"].update(FILES)
        draft.card["anomaly"] = anomaly
        draft.card["network"] = {"file": "network", "feature_layers": layers}
        draft.card["unknown_policy"]["ood"] = {"score": best, "threshold": threshold}
    return anomaly

