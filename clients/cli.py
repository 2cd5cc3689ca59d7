"""``seg-client``: the command-line applications on top of the served models: inference,
groups, the segment workflow and ret_meta. Each command group lives beside the code it drives."""

from __future__ import annotations

from typing import Any

import click

from clients.groups.cli import groups
from clients.inference.cli import bench, evaluate, infer
from clients.meta.cli import meta
from clients.segments.cli import masks, segments
from segcontract.errors import DEBUG_HELP, reported

PROG = "seg-client"
DEBUG = "segstack.debug"  # where --debug leaves its value, in the context's meta


class _ClientCommands(click.Group):
    """Every command's user errors (``segcontract.errors.SegstackError``) end here: one line on
    stderr and exit code 2, or the traceback with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported(PROG, debug=ctx.meta.get(DEBUG, False)):
            return super().invoke(ctx)


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[DEBUG] = value


@click.group(
    cls=_ClientCommands,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, help=DEBUG_HELP)
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
