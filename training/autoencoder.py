"""A convolutional autoencoder on Fashion-MNIST: squeeze each photo through 16 numbers and rebuild it.

1. **Data** — real Fashion-MNIST (Debian package): a slice of the training file (part of it kept for
   validation) and the whole test file, grey values in [0, 1].
2. **Model** — encoder: two stride-2 convolutions (28 → 14 → 7) and a Dense bottleneck ``latent``; decoder:
   Dense back to 7×7 maps and two stride-2 transposed convolutions to a sigmoid ``reconstruction``.
3. **Training** — mean squared error between the photo and its reconstruction, Adam.
4. **Evaluation** — reconstruction MSE on train / validation / test; the anomaly threshold is the error that
   95 % of the validation photos stay under (an unusual image is one the model cannot rebuild); the
   bottleneck of test photos projected to 2-D with PCA and t-SNE (the latent map the lesson draws).
5. **Publish** — ``model.keras`` + ``latent_map.json`` + the card (export adds ONNX and TF.js).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from models.registry import Registry
from training.importers import FASHION_MNIST_CLASSES, fashion_mnist_arrays
from training.progress import Progress
from training.tf import keras

NAME = "fashion-autoencoder"
TPR = 0.95  # share of normal (validation) photos under the anomaly threshold


@dataclass
class AutoencoderConfig:
    train_images: int = 20000
    validation_images: int = 2000
    test_images: int = 10000  # of the test file (all of it by default)
    epochs: int = 10
    batch_size: int = 128
    latent_dim: int = 16
    learning_rate: float = 2e-3
    map_points: int = 1000  # test photos in the 2-D latent map
    seed: int = 0


@dataclass
class Result:
    model: keras.Model
    card: dict
    latent_map: dict
    test_images: np.ndarray  # what export checks ONNX / TF.js against


def load_data(config: AutoencoderConfig):
    """(train, validation, test images in [0, 1] as (N, 28, 28, 1), test labels)."""
    images, _ = fashion_mnist_arrays("train")
    test, test_labels = fashion_mnist_arrays("test")
    test, test_labels = test[:config.test_images], test_labels[:config.test_images]
    rows = np.random.default_rng(config.seed).permutation(len(images))
    train = images[rows[:config.train_images]]
    validation = images[rows[config.train_images:config.train_images + config.validation_images]]
    scale = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
    return scale(train), scale(validation), scale(test), test_labels.astype(int)


def build_autoencoder(latent_dim: int) -> keras.Model:
    """image (28, 28, 1) → [reconstruction (28, 28, 1), latent (latent_dim)]."""
    image = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    latent = keras.layers.Dense(latent_dim, name="latent")(keras.layers.Flatten()(x))
    y = keras.layers.Dense(7 * 7 * 32, activation="relu")(latent)
    y = keras.layers.Reshape((7, 7, 32))(y)
    y = keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(y)
    y = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction")(y)
    return keras.Model(image, [y, latent], name="autoencoder")


class EpochProgress(keras.callbacks.Callback):
    def __init__(self, progress: Progress, epochs: int):
        super().__init__()
        self.progress, self.epochs = progress, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.progress.step(epoch + 1, self.epochs, loss=float(logs.get("loss", np.nan)),
                           val_loss=float(logs.get("val_loss", np.nan)))


def errors(model: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-image reconstruction MSE, latent vectors)."""
    from models.generative import reconstruction_errors

    reconstructions, latent = model.predict(images, batch_size=256, verbose=0)
    return reconstruction_errors(images, reconstructions), latent


def latent_map(latent: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """The bottleneck of test photos in 2-D: PCA (linear) and t-SNE (keeps neighbours close)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    pca = PCA(2, random_state=seed).fit(latent)
    with threadpool_limits(1, user_api="openmp"):  # its OpenMP threads spin for seconds on a busy machine
        tsne = TSNE(2, perplexity=min(30, len(latent) - 1), init="pca", random_state=seed).fit_transform(latent)
    rounded = lambda points: np.round(points, 3).tolist()  # noqa: E731
    return {"classes": list(FASHION_MNIST_CLASSES), "labels": labels.tolist(),
            "pca": rounded(pca.transform(latent)), "tsne": rounded(tsne),
            "pca_explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}


def train(config: AutoencoderConfig, progress: Progress | None = None) -> Result:
    progress = progress or Progress(bars=False)
    keras.utils.set_random_seed(config.seed)
    progress.stage("data", unit="step")
    train_x, val_x, test_x, test_labels = load_data(config)
    model = build_autoencoder(config.latent_dim)
    model.compile(keras.optimizers.Adam(config.learning_rate), loss={"reconstruction": "mse"})
    progress.stage("train", config.epochs)
    started = time.perf_counter()
    history = model.fit(train_x, {"reconstruction": train_x}, validation_data=(val_x, {"reconstruction": val_x}),
                        epochs=config.epochs, batch_size=config.batch_size, verbose=0,
                        callbacks=[EpochProgress(progress, config.epochs)])
    seconds = time.perf_counter() - started
    progress.stage("evaluate", unit="step")
    mse = {name: errors(model, x)[0] for name, x in (("train", train_x[:5000]), ("validation", val_x))}
    test_errors, test_latent = errors(model, test_x)
    threshold = float(np.quantile(mse["validation"], TPR))
    rows = np.random.default_rng(config.seed).permutation(len(test_x))[:config.map_points]
    points = latent_map(test_latent[rows], test_labels[rows], config.seed)
    card = {
        "schema_version": 1, "task": "image-reconstruction",
        "description": {"es": "Autocodificador convolucional: comprime cada foto de ropa (Fashion-MNIST) en "
                              f"{config.latent_dim} números y la reconstruye; lo que no sabe reconstruir es inusual.",
                        "en": "Convolutional autoencoder: squeezes each clothing photo (Fashion-MNIST) into "
                              f"{config.latent_dim} numbers and rebuilds it; what it cannot rebuild is unusual."},
        "input": {"size": 28, "color": "L", "scale": 255, "layout": "NHWC", "name": "image"},
        "outputs": {"reconstruction": "reconstruction", "latent": "latent"},
        "latent": {"dim": config.latent_dim, "map": {"file": "latent_map", "points": len(rows),
                                                     "methods": ["pca", "tsne"]}},
        "training": {"config": asdict(config), "data": "Fashion-MNIST (Debian dataset-fashion-mnist), train file",
                     "seconds": round(seconds, 1), "parameters": int(model.count_params())},
        "metrics": {"reconstruction_mse": {"train": round(float(mse["train"].mean()), 5),
                                           "validation": round(float(mse["validation"].mean()), 5),
                                           "test": round(float(test_errors.mean()), 5), "test_images": len(test_x)},
                    "loss_curve": {"train": [round(float(v), 5) for v in history.history["loss"]],
                                   "validation": [round(float(v), 5) for v in history.history["val_loss"]]}},
        "anomaly": {"score": "reconstruction_mse", "threshold": round(threshold, 6), "tpr": TPR,
                    "data": "validation photos (Fashion-MNIST train file, not used for training)"},
    }
    return Result(model, card, points, test_x[:64])


def publish(registry: Registry, result: Result, name: str = NAME) -> str:
    """A new version holding ``model.keras``, ``latent_map.json`` and the card (not promoted yet)."""
    with registry.publish(name, result.card, promote=False) as draft:
        result.model.save(draft.dir / "model.keras")
        (draft.dir / "latent_map.json").write_text(json.dumps(result.latent_map, separators=(",", ":")))
        draft.card["files"] = {"keras": "model.keras", "latent_map": "latent_map.json"}
    return draft.version



