"""The serving side's commands (composed into ``riim`` by :mod:`cli.main`): the model registry as
served (list, show, promote, rollback) and the development server. None of them imports TensorFlow."""
from __future__ import annotations

import json

import click

from models.card import IMAGE_TASK, parity_table
from models.registry import DEFAULT_ROOT, Registry, RegistryError

registry_option = click.option("--models-dir", default=str(DEFAULT_ROOT), show_default=True,
                               envvar="RIIM_MODELS_DIR", help="Model registry folder.")


@click.group()
def models():
    """Model registry: list, show, promote, rollback, build the default model."""


def _fail(error: Exception):
    raise click.ClickException(str(error))


@models.command("list")
@registry_option
def list_models(models_dir):
    """Every model with its versions; * marks the current one."""
    registry = Registry(models_dir)
    names = registry.models()
    if not names:
        click.echo(f"no models in {models_dir} — run `riim models default`")
    for name in names:
        current = registry.current(name)
        click.echo(f"{name} ({registry.task(name)}): "
                   + " ".join(f"{v}*" if v == current else v for v in registry.versions(name)))


@models.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the whole card as JSON.")
@registry_option
def show(ref, as_json, models_dir):
    """Describe NAME[:VERSION] (the current version by default)."""
    name, _, version = ref.partition(":")
    try:
        card = Registry(models_dir).card(name, version or None)
    except RegistryError as error:
        _fail(error)
    if as_json:
        click.echo(json.dumps(card, indent=2, ensure_ascii=False))
        return
    click.echo(f"{card['name']}:{card['version']}  created {card['created']}  task {card['task']}")
    click.echo(f"  {card.get('description', {}).get('en', '')}")
    if card["task"] == IMAGE_TASK:  # other tasks' own sections: `riim models show NAME --json`
        click.echo(f"  labels: {', '.join(card['labels'])}; unknown: {card['unknown_policy']['rule']} "
                   f"{card['unknown_policy']['threshold']}")
        backbone = card["backbone"]
        click.echo(f"  backbone: {backbone['name']} ({backbone['source']}, {backbone['license']}), "
                   f"{backbone['parameters']:,} parameters")
        spec = card["input"]
        click.echo(f"  input: {spec['size']}x{spec['size']} {spec['color']}, centre crop {spec['crop_fraction']}, "
                   f"(x - {spec['mean']}) / {spec['std']}")
    click.echo("  files:")
    for fmt, entry in card["files"].items():
        click.echo(f"    {fmt:<16} {entry['path']:<28} {entry['bytes'] / 2**20:8.2f} MiB  {entry['sha256'][:12]}")
    for check, result in card.get("parity", {}).items():
        click.echo(parity_table(result) if check == "report" else f"  parity {check}: {json.dumps(result)}")


@models.command("promote")
@click.argument("ref")
@registry_option
def promote(ref, models_dir):
    """Make NAME:VERSION the current version (served without restart)."""
    name, _, version = ref.partition(":")
    if not version:
        _fail(click.UsageError("give NAME:VERSION, e.g. animals:v2"))
    try:
        Registry(models_dir).promote(name, version)
    except RegistryError as error:
        _fail(error)
    click.echo(f"{name}: current version is now {version}")


@models.command("rollback")
@click.argument("name")
@registry_option
def rollback(name, models_dir):
    """Return NAME to the version that was current before."""
    try:
        version = Registry(models_dir).rollback(name)
    except RegistryError as error:
        _fail(error)
    click.echo(f"{name}: rolled back to {version}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve(host, port):
    """Serve the web app and API with the development server (use `make serve` for gunicorn)."""
    from app import create_app, prepare

    app = create_app()
    prepare(app)
    app.run(host=host, port=port, debug=False)  # never the interactive debugger


COMMANDS = (models, serve)
