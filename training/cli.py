"""``seg-train``: dataset converters and training entry points.

The group gathers the commands of ``training/*_cli.py`` (one module per family: the converters,
YOLO, semantic, classify, TensorBoard) and reports their user errors in one place: one line on
stderr and exit code 2, the traceback with --debug."""

from __future__ import annotations

from typing import Any

import click

from segcontract.errors import DEBUG_HELP, SegstackError, reported
from training.classify_cli import classify, wandb_pull
from training.convert_cli import coco2yolo, labelme
from training.semantic_cli import color_mask, semantic
from training.tensorboard_cli import tensorboard
from training.yolo_cli import yolo

PROG = "seg-train"
DEBUG = "segstack.debug"  # where --debug leaves its value, in the context's meta
# what `pip install 'segstack[train]'` brings; the builder, the server and the clients do without
TRAIN_EXTRA = {"lightning", "wandb", "tensorboard", "albumentations", "pytorch_lightning", "lightning_fabric"}


class TrainExtraMissing(SegstackError):
    """A command needs a module of the ``train`` extra that is not installed."""


class _TrainingCommands(click.Group):
    """Every command's user errors (``segcontract.errors.SegstackError``) end here; a command that
    needs the ``train`` extra says so in one line when it is not installed."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported(PROG, debug=ctx.meta.get(DEBUG, False)):
            try:
                return super().invoke(ctx)
            except ModuleNotFoundError as exc:
                if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
                    raise
                raise TrainExtraMissing(
                    f"{exc.name} is not installed: training needs pip install 'segstack[train]'"
                ) from exc


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[DEBUG] = value


@click.group(
    cls=_TrainingCommands, context_settings={"help_option_names": ["-h", "--help"], "show_default": True}
)
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, help=DEBUG_HELP)
def main() -> None:
    """Convert datasets and train segmentation and classification models."""


for command in (coco2yolo, labelme, yolo, semantic, color_mask, classify, wandb_pull, tensorboard):
    main.add_command(command)
