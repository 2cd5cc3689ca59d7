"""``build-repo doctor``: will this repository's TensorRT engines load on this machine's server, and
how far do its INT8 networks' answers move from FP32's (what the build's accuracy guard measured)?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from builder.quantization.guard import RECORD_FILE, GuardResult
from builder.subcommand import REPOSITORY_ARGUMENT, SETTINGS
from builder.tensorrt.ngc import TENSORRT_VERSION, TRITON_IMAGE
from segcontract import engines as engine_compat


@click.command(
    "doctor",
    short_help="Check a repository's TensorRT engines load here; show its INT8 models' accuracy.",
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
    """Show, for each INT8 network (quantization.json), how far its answers moved from FP32's on
    the held-out calibration images; compare each TensorRT engine's record (engine.json: GPU and
    TensorRT it was built with) with this machine. Exits 1 when an engine would not load here, 0
    otherwise."""
    for line in int8_lines(repository):
        click.echo(line)
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


def int8_lines(repository: Path) -> list[str]:
    """One line per model folder with an INT8 record: what the accuracy guard measured."""
    lines = []
    for record in sorted(Path(repository).glob(f"*/{RECORD_FILE}")):
        try:
            result = GuardResult.from_json(record.read_text())
        except (OSError, ValueError, TypeError) as exc:
            lines.append(f"{record.parent.name}: unreadable {RECORD_FILE} ({exc})")
            continue
        warning = "  (warning: beyond the limit)" if result.accepted_drop else ""
        lines.append(f"{record.parent.name}: INT8 by {result.method}: {result.describe()}{warning}")
    return lines
