"""The command-line options that name the store and the DATA/ layout, declared once for every
command that takes them (seg-client and seg-train alike)."""

from __future__ import annotations

from pathlib import Path

import click

from store.layout import DB_URL_HELP

DATA_ROOT_OPTION = click.option(
    "--data-root",
    "--data_root",
    "data_root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    help="Root of the DATA/ MARKUP/ TEST/ layout (DATA/pictures, DATA/datasets, DATA/meta...).",
)

DB_OPTION = click.option(
    "--db",
    default=None,
    metavar="URL",
    help=DB_URL_HELP,
)
