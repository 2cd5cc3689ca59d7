"""What build-repo's subcommands (doctor, tune) share: their settings and the repository argument."""

from __future__ import annotations

from pathlib import Path

import click

SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}

REPOSITORY_ARGUMENT = click.argument(
    "repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("model_repository"),
)
