"""The ``seg-train`` console script: checks that the train extra is installed before importing the
CLI, whose commands import torch, Lightning and ultralytics."""

from __future__ import annotations

from segcontract.extras import require_extra


def main() -> None:
    require_extra("seg-train", "train")
    from training.cli import main as cli

    cli(prog_name="seg-train")  # not click's guess from sys.argv ("python -m ..." under -m)
