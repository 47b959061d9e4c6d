"""``riim paradigms``: supervised vs unsupervised vs reinforcement learning on the served model's embeddings
of real Fashion-MNIST photos (``training/paradigms.py``), written as one JSON file the lesson page reads."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

from app.cli import registry_option
from models import atomic
from models.registry import Registry, RegistryError

RESULTS_FILE = "paradigms.json"  # in the app's instance folder (GET /api/v1/paradigms serves it)
MAX_UPLOADS = 300


def instance_path() -> Path:
    from app import create_app

    return Path(create_app().instance_path)


def uploads(registry: Registry, model: str, folder: Path, project, limit: int = MAX_UPLOADS) -> dict:
    """The app's stored uploads (the newest ``limit``) embedded by ``model``, projected like the pool and
    grouped with no label; files that do not decode are skipped and counted."""
    import base64
    import io

    from export.embeddings import onnx_session, run_images
    from models.preprocess import ImageDecodeError, load_image
    from training import paradigms

    files = sorted((p for p in folder.glob("*/*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime, reverse=True)[:limit] if folder.is_dir() else []
    images, skipped = [], 0
    for path in files:
        try:
            images.append(load_image(path))
        except ImageDecodeError:
            skipped += 1
    if len(images) < 2:
        return {"count": len(images), "skipped": skipped, "groups": []}
    card = registry.card(model)
    embedded = run_images(onnx_session(registry, model), card, images)["embedding"]
    thumbnails = []
    for image in images:
        small = image.copy()
        small.thumbnail((64, 64))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=80)
        thumbnails.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return {"count": len(images), "skipped": skipped, "groups": paradigms.group_uploads(project(embedded), thumbnails)}


def run(registry: Registry, model: str, pool: int, test: int, seeds, sizes, cache_dir: Path, out: Path,
        uploads_dir: Path | None = None) -> dict:
    """Embed the pool and test images with the served ``model`` (cached), run every paradigm for each seed,
    group the app's uploads in ``uploads_dir`` (when given) and write the results (atomically) to ``out``."""
    from tqdm import tqdm

    from export.embeddings import fashion_embeddings
    from training import paradigms
    from training.importers import FASHION_MNIST_CLASSES

    started = time.perf_counter()
    version = registry.resolve(model)
    embedded, pixels, labels = {}, {}, {}
    for source, count in (("train", pool), ("test", test)):
        with tqdm(total=count, desc=f"embeddings ({source})", unit="img", leave=False) as bar:
            pixels[source], labels[source], outputs = fashion_embeddings(
                registry, model, source, count, cache_dir, on_batch=lambda done, total: bar.update(done - bar.n))
        embedded[source] = outputs["embedding"]
    embed_seconds = time.perf_counter() - started
    project, variance = paradigms.features(embedded["train"])
    pool_x, test_x = project(embedded["train"]), project(embedded["test"])
    data = paradigms.Data(pool_x, labels["train"], test_x, labels["test"], pixels["train"], FASHION_MNIST_CLASSES)
    with tqdm(total=len(seeds), desc="seeds", unit="seed") as bar:
        results = paradigms.experiment(data, tuple(seeds), tuple(sizes), on_seed=lambda done, total: bar.update(1))
    if uploads_dir is not None:
        results["uploads"] = uploads(registry, model, Path(uploads_dir), project)
    results.update(
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        model={"name": model, "version": version, "embedding_dim": int(embedded["train"].shape[1])},
        data={"source": "Fashion-MNIST (Debian dataset-fashion-mnist)", "pool": pool, "test": test,
              "classes": list(FASHION_MNIST_CLASSES), "components": int(pool_x.shape[1]),
              "explained_variance": round(variance, 4)},
        seconds={"embeddings": round(embed_seconds, 1), "total": round(time.perf_counter() - started, 1)})
    atomic.write_json(out, results)
    return results


def table(results: dict, sizes=(100, 500, 2000)) -> str:
    """The acceptance table: accuracy at n labels / feedback events (mean ± std over seeds), regret, ARI, purity."""
    s = results["summary"]
    sizes = [n for n in sizes if str(n) in {str(k) for k in s["supervised"]["accuracy"]}]
    get = lambda block, n: block[str(n)] if str(n) in block else block[n]  # noqa: E731 — JSON keys are str
    lines = ["n      supervised     k-means+labels  eps-greedy     LinUCB         regret eps / LinUCB"]
    for n in sizes:
        cells = [get(s[m]["accuracy"], n) for m in ("supervised", "kmeans", "epsilon_greedy", "linucb")]
        regret = [get(s[m]["regret"], n)[0] for m in ("epsilon_greedy", "linucb")]
        lines.append(f"{n:<6} " + " ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in cells)
                     + f"  {regret[0]:.0f} / {regret[1]:.0f}")
    for name in ("kmeans", "gmm"):
        lines.append(f"{name}: ARI {s[name]['ari'][0]:.3f} ± {s[name]['ari'][1]:.3f}, "
                     f"purity {s[name]['purity'][0]:.3f} ± {s[name]['purity'][1]:.3f} (no labels)")
    return "\n".join(lines)


@click.command("paradigms")
@click.option("--model", default="animals", show_default=True, help="Served image model whose embeddings are used.")
@click.option("--pool", default=4000, show_default=True, help="Fashion-MNIST training images (the learners' pool).")
@click.option("--test", default=1000, show_default=True, help="Fashion-MNIST test images (every accuracy).")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1, 10))
@click.option("--sizes", default="20,50,100,200,500,1000,2000", show_default=True,
              help="Labels / feedback events at which each learner is measured.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Results JSON (default: the app's instance folder/{RESULTS_FILE}, which the lesson reads).")
@click.option("--uploads", "uploads_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the app's stored uploads, grouped with no label (default: the instance's uploads).")
@registry_option
def paradigms_command(model, pool, test, seeds, sizes, out, uploads_dir, models_dir):
    """Supervised vs unsupervised vs reinforcement learning on the same real photos: accuracy per number of
    labels or feedback events, cluster purity / ARI, bandit regret."""
    try:
        sizes = sorted({int(n) for n in sizes.split(",")})
    except ValueError:
        raise click.BadParameter("comma-separated integers", param_hint="--sizes") from None
    if sizes[0] < 1 or sizes[-1] > pool:
        raise click.BadParameter(f"each size must be between 1 and --pool ({pool})", param_hint="--sizes")
    instance = instance_path() if out is None or uploads_dir is None else None
    target = out or instance / RESULTS_FILE
    try:
        results = run(Registry(models_dir), model, pool, test, range(seeds), sizes, target.parent / "cache", target,
                      uploads_dir or instance / "uploads")
    except RegistryError as error:
        raise click.ClickException(f"{error} — run `riim models default` first") from None
    click.echo(table(results))
    click.echo(f"uploads: {results['uploads']['count']} grouped into {len(results['uploads']['groups'])} groups"
               + (f" ({results['uploads']['skipped']} not decodable)" if results['uploads']['skipped'] else ""))
    click.echo(f"written {target} in {results['seconds']['total']:.0f} s")


COMMANDS = (paradigms_command,)
