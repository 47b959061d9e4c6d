"""How well does reconstruction error find out-of-distribution images — next to the image model's own OOD
scores on exactly the same images?

In distribution: Fashion-MNIST test photos (the autoencoder never trained on them). Out of distribution:

- ``photos`` — the real photos of :func:`training.real_photos.ood_photos` (scikit-image coffee, rocket,
  astronaut, …; scikit-learn china, flower). The autoencoder sees them through
  :func:`models.generative.to_grey` (luma grey, centred square, area-averaged to 28×28, no inversion); the
  image model sees the full-colour photo through its own preprocessing, as serving does.
- ``digits`` — real MNIST digits: same size and format as Fashion-MNIST, a harder ("near") case.

Scores (higher = more unusual), each read with AUROC (1.0: every unusual image scores above every normal one;
0.5: chance):

- ``reconstruction_mse`` — the autoencoder's, from its exported ONNX model;
- ``energy`` and ``mahalanobis`` *as calibrated* — the image model's served OOD scores with its card's
  parameters (fitted on its own cat/dog photos, so Fashion-MNIST is unusual to them too);
- ``mahalanobis_refit`` — the same Mahalanobis method on the same embeddings, refitted on Fashion-MNIST
  training photos with their classes: what the image model's method gives when told what "normal" is here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.calibrate import MahalanobisOOD, auroc
from export.embeddings import cached_embeddings, fashion_embeddings, onnx_session, run_images
from export.generative import onnx_outputs
from models import anomaly
from models.generative import reconstruction_errors, to_grey
from models.registry import Registry


def autoencoder_errors(registry: Registry, name: str, version: str, images: np.ndarray) -> np.ndarray:
    """Reconstruction MSE of (N, 28, 28) images in [0, 1] by the version's ONNX model."""
    card = registry.card(name, version)
    batch = images[..., None].astype(np.float32)
    outputs = onnx_outputs(registry.file(name, version, "onnx"), card["input"]["name"], batch)
    return reconstruction_errors(batch, outputs[card["outputs"]["reconstruction"]])


def image_model_scores(registry: Registry, model: str, outputs: dict, refit: MahalanobisOOD) -> dict[str, np.ndarray]:
    card = registry.card(model)
    version = registry.resolve(model)
    head = dict(np.load(registry.file(model, version, "head")))
    scores = {"mahalanobis_refit": -refit.score_samples(outputs["embedding"])}
    if "ood" in card["files"]:
        stats = dict(np.load(registry.file(model, version, "ood")))
        scores["mahalanobis"] = anomaly.ood_scores("mahalanobis", card, outputs["embedding"], None, stats=stats)
    scores["energy"] = anomaly.ood_scores("energy", card, outputs["embedding"], None, head=head)
    return scores


def evaluate(registry: Registry, name: str, version: str, image_model: str, cache_dir: Path, test: int = 1000,
             refit_images: int = 4000, digits: int = 1000) -> dict:
    """The AUROC table (see the module docstring) plus how many images of each kind were used."""
    from training.digits_data import mnist_arrays
    from training.real_photos import ood_photos

    fashion, _, fashion_out = fashion_embeddings(registry, image_model, "test", test, cache_dir)
    _, train_labels, train_out = fashion_embeddings(registry, image_model, "train", refit_images, cache_dir)
    refit = MahalanobisOOD().fit(train_out["embedding"], train_labels)
    photos = ood_photos()
    photo_grey = np.stack([to_grey(p.image) for p in photos])
    session = onnx_session(registry, image_model)
    photo_out = run_images(session, registry.card(image_model), [p.image for p in photos])
    digit_pixels = mnist_arrays()[0]
    digit_pixels = digit_pixels[np.random.default_rng(0).permutation(len(digit_pixels))[:digits]]
    digit_bytes = np.clip(np.rint(digit_pixels * 255), 0, 255).astype(np.uint8)
    digit_out = cached_embeddings(registry, image_model, digit_bytes, f"mnist-{digits}", cache_dir)
    normal_error = autoencoder_errors(registry, name, version, fashion / 255.0)
    normal_model = image_model_scores(registry, image_model, fashion_out, refit)
    threshold = registry.card(name, version)["anomaly"]["threshold"]
    table = {}
    for kind, grey, outputs in (("photos", photo_grey, photo_out), ("digits", digit_bytes / 255.0, digit_out)):
        errors = autoencoder_errors(registry, name, version, grey)
        unusual_model = image_model_scores(registry, image_model, outputs, refit)
        table[kind] = {"reconstruction_mse": round(auroc(normal_error, errors), 4),
                       **{score: round(auroc(normal_model[score], unusual_model[score]), 4) for score in unusual_model},
                       "images": len(grey), "flagged_share": round(float((errors > threshold).mean()), 4),
                       "median_mse": round(float(np.median(errors)), 5)}
    return {"in_distribution": {"data": "Fashion-MNIST test", "images": test,
                                "median_mse": round(float(np.median(normal_error)), 5),
                                "flagged_share": round(float((normal_error > threshold).mean()), 4)},
            "out_of_distribution": table,
            "photos": [p.name for p in photos],
            "image_model": {"name": image_model, "version": registry.resolve(image_model),
                            "refit_images": refit_images},
            "grey_transform": "Pillow L (ITU-R 601-2 luma), centred square of the shorter side, BOX resize to "
                              "28x28, /255, no inversion (models.generative.to_grey)"}


def add_evaluation(registry: Registry, name: str, version: str, image_model: str, cache_dir: Path, **sizes) -> dict:
    """Run :func:`evaluate` and store it as the card's ``anomaly.evaluation``."""
    result = evaluate(registry, name, version, image_model, cache_dir, **sizes)
    with registry.amend(name, version) as draft:
        draft.card["anomaly"] = {**draft.card["anomaly"], "evaluation": result}
    return result
