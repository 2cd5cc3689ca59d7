"""The ``build-repo`` console script: checks that the build extra is installed before importing the
CLI, whose modules import torch, ONNX and ultralytics."""

from __future__ import annotations

from segcontract.extras import require_extra


def main() -> None:
    require_extra("build-repo", "build")
    from builder.cli import main as cli

    cli(prog_name="build-repo")  # not click's guess from sys.argv ("python -m ..." under -m)
