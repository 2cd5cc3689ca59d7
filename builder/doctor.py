"""``build-repo doctor``: will this repository's TensorRT engines load on this machine's server?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from builder.subcommand import REPOSITORY_ARGUMENT, SETTINGS
from builder.tensorrt.ngc import TENSORRT_VERSION, TRITON_IMAGE
from segcontract import engines as engine_compat


@click.command(
    "doctor",
    short_help="Check that a repository's TensorRT engines will load on this machine.",
    context_settings=SETTINGS,
)
@REPOSITORY_ARGUMENT
@click.option(
    "--tensorrt-version",
    default=None,
    help="The TensorRT of the server that will load the engines. Default: the one found here (Python "
    f"package, TRT_VERSION, or libnvinfer); {TRITON_IMAGE} has {TENSORRT_VERSION}.",
)
def doctor(repository: Path, tensorrt_version: str | None) -> None:
    """Compare each TensorRT engine's record (engine.json: GPU and TensorRT it was built with)
    with this machine. Exits 1 when an engine would not load here, 0 otherwise."""
    models = engine_compat.engine_models(repository)
    if not models:
        click.echo(f"{repository}: no TensorRT engines (tensorrt_plan models); nothing to check")
        return
    gpus = engine_compat.local_gpus()
    version = tensorrt_version or engine_compat.local_tensorrt_version()
    here = ", ".join(f"{g.name} (compute capability {g.compute_capability})" for g in gpus) or "no GPU"
    click.echo(f"here: {here}; TensorRT {version or 'not found (give --tensorrt-version)'}")
    failed = False
    for model in models:
        record = model.record
        built = (
            f"{record.precision} engine, TensorRT {record.tensorrt_version}, "
            f"{record.gpu.name} ({record.gpu.compute_capability}), "
            f"batch {record.min_batch}-{record.max_batch}"
            if record
            else "engine without a record"
        )
        problems = engine_compat.mismatches(model, gpus, version)
        failed |= bool(problems)
        click.echo(f"{model.name}: {built}: {'will not load here' if problems else 'OK'}")
        for line in [*problems, *engine_compat.notes(model, gpus)]:
            click.echo(f"  {line}")
    sys.exit(1 if failed else 0)
