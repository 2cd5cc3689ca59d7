"""``seg-client``: the command-line applications on top of the served models: inference,
groups, the segment workflow and ret_meta. Each command group lives beside the code it drives."""

from __future__ import annotations

import click

from clients.groups.cli import groups
from clients.inference.cli import bench, evaluate, infer
from clients.meta.cli import meta
from clients.segments.cli import masks, segments


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Query segmentation models served by Triton (seg-serve or the NGC tritonserver), pull named
    groups of images, keep what the models find in the segment store for annotators to review,
    and export it (masks, COCO, CVAT)."""


main.add_command(infer)
main.add_command(evaluate)
main.add_command(bench)
main.add_command(groups)
main.add_command(segments)
main.add_command(masks)
main.add_command(meta)
