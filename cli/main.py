"""``riim``: one command line composed of the commands each layer defines (see docs/design.md)."""
from __future__ import annotations

import sys

import click

from app import auth, db, jobs, lessons, storage, tokens
from app import cli as app_cli
from cli import commands, digits, worker
from cli import generative as generative_cli
from cli import paradigms as paradigms_cli
from cli import lab as lab_cli
from cli import series as series_cli
from export import cli as export_cli
from training import cli as training_cli


@click.group()
def main():
    """RIIM — Reconocimiento Inteligente de Imágenes / Intelligent Image Recognition."""


for command in (*app_cli.COMMANDS, auth.users_cli, lessons.lessons_cli, tokens.tokens_cli, storage.uploads_cli, db.db_cli,
                jobs.jobs_cli, *training_cli.COMMANDS, *export_cli.COMMANDS, *commands.COMMANDS,
                *lab_cli.COMMANDS, *paradigms_cli.COMMANDS, *digits.COMMANDS, *series_cli.COMMANDS, *worker.COMMANDS,
                *generative_cli.COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    sys.exit(main())
