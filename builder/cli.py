"""``build-repo``: a checkpoint in, a Triton model repository out; ``build-repo doctor`` checks one,
``build-repo tune`` fits its serving settings to the machine.

The options are declared in ``builder.cli_options`` and parsed by ``builder.option_parsing``; the
group reports user errors (``builder.user_errors``); the build itself is ``builder.build``'s."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from builder.doctor import doctor
from builder.errors import BuildError
from builder.option_parsing import build_options
from builder.options import BuildOptions
from builder.tune_cli import tune
from builder.user_errors import DEBUG_OPTION, BuildCommands

if TYPE_CHECKING:
    from builder.build import BuildResult


@click.group(
    cls=BuildCommands,
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@build_options
@DEBUG_OPTION  # below: listed after the build options (build_options keeps the callback's options)
def main(options: BuildOptions, quiet: bool) -> None:
    """Build a Triton model repository from a segmentation checkpoint.

    Exports ONNX with a dynamic batch axis, folds and cleans the graph with onnx-graphsurgeon,
    checks it against the PyTorch model, and writes <name>_preprocess, <name>_model,
    <name>_postprocess and the ensemble <name>, each with a generated config.pbtxt (python-onnx
    YOLOv8-seg: one Python model <name> doing all three, each image padded only to a multiple of
    the stride as ultralytics' predict does; --ensemble for the four, --square for the full square).

    \b
    Examples:
      build-repo --model yolov8n-seg --weights runs/segment/train/weights/best.pt
      build-repo --model smp --weights runs/semantic/roads/best.pth --name roads
      build-repo --model yolov8x-seg --weights best.pt --runtime tensorrt --fp16 --max-batch 8
      seg-serve --model-repository model_repository
      seg-client infer --source images/ --model yolov8n-seg --out results/

    `build-repo doctor [REPOSITORY]` checks that a repository's TensorRT engines match this
    machine's GPU and TensorRT (see build-repo doctor --help); `build-repo tune [REPOSITORY]
    --name NAME --images DIR` searches instances, threads and batching for this machine.
    """
    os.environ.setdefault("YOLO_VERBOSE", "False")
    options.runtime.check_available()  # before the slow imports: else the build belongs elsewhere
    result = _build(options, quiet)
    click.echo(f"Built {options.model.served_name} in {result.seconds:.1f} s: {result.repository.resolve()}")
    click.echo(f"Serve it: seg-serve --model-repository {result.repository}")


main.add_command(doctor)
main.add_command(tune)


def _build(options: BuildOptions, quiet: bool) -> BuildResult:
    """The build itself, behind the slow imports (torch, ultralytics)."""
    from builder.build import build_repository

    echo = (lambda m: None) if quiet else (lambda m: click.echo(f"build-repo: {m}", err=True))
    try:
        return build_repository(options, progress=echo)
    except OSError as exc:  # the output cannot be written: a file in the way, permissions, disk full
        where = f" {exc.filename}" if exc.filename else ""
        raise BuildError(f"cannot write{where}: {exc.strerror or exc}; check --output") from None


def entry() -> None:
    """The ``build-repo`` console script: a build, or ``build-repo doctor`` or ``tune``."""
    main()
