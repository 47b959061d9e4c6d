"""``riim train-autoencoder`` and ``riim train-gan``: train (``training/``) → publish → ONNX + TF.js
(``export/``) → for the autoencoder, the OOD evaluation against the image model → promote."""
from __future__ import annotations

import time
from pathlib import Path

import click

from app.cli import registry_option
from cli.paradigms import instance_path
from models.card import CardError
from models.registry import Registry, RegistryError


def train_autoencoder(registry: Registry, config, name: str, progress=None, evaluate: bool = True,
                      image_model: str = "animals", cache_dir: Path | None = None, eval_sizes: dict | None = None,
                      promote: bool = True, tfjs: bool = True) -> str:
    """Train, publish, export (ONNX, and TF.js unless ``tfjs`` is false), evaluate (when ``evaluate``),
    promote; the version."""
    from export import generative, reconstruction_eval
    from training import autoencoder
    from training.progress import Progress

    progress = progress or Progress(bars=False)
    result = autoencoder.train(config, progress)
    version = autoencoder.publish(registry, result, name)
    progress.stage("export", unit="step")
    generative.export(registry, name, version, result.model, "image", result.test_images, tfjs=tfjs)
    if evaluate:
        progress.stage("evaluate_ood", unit="step")
        reconstruction_eval.add_evaluation(registry, name, version, image_model,
                                           cache_dir or instance_path() / "cache", **(eval_sizes or {}))
    if promote:
        registry.promote(name, version)
    progress.finish(version=version)
    return version


def train_gan(registry: Registry, config, name: str, progress=None, promote: bool = True) -> str:
    """Train, publish, export the generator (ONNX + TF.js), promote; the version."""
    from export import generative
    from training import gan
    from training.progress import Progress

    progress = progress or Progress(bars=False)
    result = gan.train(config, progress)
    version = gan.publish(registry, result, name)
    progress.stage("export", unit="step")
    generative.export(registry, name, version, result.generator, "latent", result.check_latents)
    if promote:
        registry.promote(name, version)
    progress.finish(version=version)
    return version


common = [
    click.option("--progress-file", type=click.Path(dir_okay=False, path_type=Path),
                 help="JSON file rewritten atomically with stage, epoch, losses and ETA."),
    click.option("--promote/--no-promote", default=True, show_default=True, help="Make the new version current."),
    registry_option,
]


def with_common(function):
    for option in reversed(common):
        function = option(function)
    return function


def _fail_on(errors, run):
    try:
        return run()
    except errors as error:
        raise click.ClickException(str(error)) from None


@click.command("train-autoencoder")
@click.option("--name", default="fashion-autoencoder", show_default=True)
@click.option("--images", default=20000, show_default=True, help="Fashion-MNIST training photos used.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--latent", "latent_dim", default=16, show_default=True, type=click.IntRange(2, 256))
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="AUROC of reconstruction error on real out-of-distribution photos vs the image model's scores.")
@click.option("--image-model", default="animals", show_default=True, help="Image model compared in the evaluation.")
@with_common
def train_autoencoder_command(name, images, epochs, latent_dim, evaluate, image_model, progress_file, promote,
                              models_dir):
    """Train the convolutional autoencoder on Fashion-MNIST and publish it (Keras, ONNX, TF.js)."""
    from training.autoencoder import AutoencoderConfig
    from training.progress import Progress
    from training.real_photos import MissingDataError

    registry, started = Registry(models_dir), time.perf_counter()
    config = AutoencoderConfig(train_images=images, epochs=epochs, latent_dim=latent_dim)
    version = _fail_on((RegistryError, CardError, MissingDataError), lambda: train_autoencoder(
        registry, config, name, Progress(progress_file), evaluate, image_model, promote=promote))
    card = registry.card(name, version)
    click.echo(f"{name}:{version} published in {time.perf_counter() - started:.0f} s; test reconstruction MSE "
               f"{card['metrics']['reconstruction_mse']['test']:.4f}, anomaly threshold {card['anomaly']['threshold']:.4f}")
    for kind, row in card["anomaly"].get("evaluation", {}).get("out_of_distribution", {}).items():
        click.echo(f"  OOD AUROC vs {kind} ({row['images']}): " + ", ".join(
            f"{key} {value:.3f}" for key, value in row.items() if key not in ("images", "median_mse", "flagged_share")))


@click.command("train-gan")
@click.option("--name", default="digits-gan", show_default=True)
@click.option("--images", default=10000, show_default=True, help="Real MNIST digits used (at most 10,000).")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--latent", "latent_dim", default=16, show_default=True, type=click.IntRange(2, 128))
@with_common
def train_gan_command(name, images, epochs, latent_dim, progress_file, promote, models_dir):
    """Train the small DCGAN on real MNIST digits and publish its generator (Keras, ONNX, TF.js)."""
    from training.digits_data import MissingDigitsError
    from training.gan import GanConfig
    from training.progress import Progress

    registry, started = Registry(models_dir), time.perf_counter()
    config = GanConfig(images=images, epochs=epochs, latent_dim=latent_dim)
    version = _fail_on((RegistryError, CardError, MissingDigitsError), lambda: train_gan(
        registry, config, name, Progress(progress_file), promote))
    card = registry.card(name, version)
    quality = card["metrics"]["quality"]
    click.echo(f"{name}:{version} published in {time.perf_counter() - started:.0f} s (training "
               f"{card['training']['seconds']:.0f} s); a classifier ({quality['classifier_accuracy']:.3f} accurate on "
               f"real digits) is confident (p ≥ {quality['confident_at']}) on "
               f"{quality['generated']['confident_share']:.1%} of generated digits vs "
               f"{quality['real_heldout']['confident_share']:.1%} of real ones")


COMMANDS = (train_autoencoder_command, train_gan_command)
