"""``seg-client masks``: mask files for annotators from the stored segments (the successor of
mask_bulder.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.segments.store_cli import (
    MODEL_FILTER_OPTION,
    STATUS_OPTION,
    STORE_GROUP_OPTION,
    interrupted_in_one_line,
)
from clients.triton.progress import progress_bar


@click.command()
@STORE_GROUP_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: MARKUP/masks under --data-root).",
)
@click.option(
    "--color",
    is_flag=True,
    help="Also write <stem>_color.png beside each mask, for people to look at: background black, "
    "each segment value in its own colour (the PASCAL VOC palette: 1 red (128,0,0), 2 green "
    "(0,128,0), 3 olive (128,128,0), ...). A run without --color leaves earlier ones as they are "
    "(not updated), except a badlisted image's, removed with its mask.",
)
@STATUS_OPTION
@MODEL_FILTER_OPTION
@DB_OPTION
@DATA_ROOT_OPTION
@interrupted_in_one_line
def masks(**given: Any) -> None:
    """Masks for annotators from the stored segments: <stem>.png and <stem>.json per image.

    The PNG has one channel at the image's size: 0 is background, k the k-th segment by score
    (highest first; where segments overlap the higher score wins); 16-bit when an image has more
    than 255 segments. The JSON beside it lists each value's segment id, class, score, status
    and model. With --color, <stem>_color.png shows the same mask in colour. Badlisted images are
    left out, and the mask files an earlier run wrote for them are removed.
    """
    from clients.segments.mask_folder import MaskOptions, write_masks

    click.echo(write_masks(MaskOptions(**given), progress=progress_bar).line())
