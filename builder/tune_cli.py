"""``build-repo tune``: find the serving settings that get the most images through a built
repository on this machine, and write them into its configs."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from builder.errors import BuildError
from builder.quantization.options import DEFAULT_MAX_DROP, HELD_OUT_EVERY
from builder.subcommand import REPOSITORY_ARGUMENT, SETTINGS


@click.command(
    "tune",
    short_help="Search runtimes, INT8, instances, threads and batching for a built repository (minutes).",
    context_settings=SETTINGS,
)
@REPOSITORY_ARGUMENT
@click.option("--name", required=True, help="The served model to tune (build-repo --name, e.g. yolov8n-seg).")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="A folder of your images, sent as the requests' payloads (a few dozen are enough).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    help="Requests in flight while measuring: what your clients send (seg-client infer -j).",
)
@click.option(
    "--budget",
    "budget_s",
    type=click.FloatRange(min=30),
    default=300.0,
    help="Seconds the search may take; no trial starts that would overrun it.",
)
@click.option(
    "--calibration-images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also try the network as OpenVINO INT8, calibrated on this folder of images like those the "
    f"model will serve (a few hundred; at least 5; every {HELD_OUT_EVERY}th held out) and refused "
    "beyond --max-drop, as build-repo --int8. Without it, INT8 is not tried.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_DROP,
    show_default=True,
    help="With --calibration-images: the largest drop INT8 may have (points of the task's measure "
    "against FP32: mask mAP50, top-1 %, mIoU); beyond it, INT8 is a failed trial.",
)
@click.option("--dry-run", is_flag=True, help="Measure and report, but leave the configs as they are.")
def tune(
    repository: Path,
    name: str,
    images: Path,
    concurrency: int,
    budget_s: float,
    calibration_images: Path | None,
    max_drop: float,
    dry_run: bool,
) -> None:
    """Serve copies of REPOSITORY's NAME with other settings (seg-serve on free loopback ports),
    measure each with seg-client bench at --concurrency, and keep the fastest.

    \b
    Varied one at a time, from the repository's own setting: the network's runtime (OpenVINO FP32,
    converted from its model.onnx and checked against onnxruntime; OpenVINO INT8 with
    --calibration-images), instances of every model (1, 2, 4, the cores), the network's intra-op
    threads (shared among the instances, all cores each, one), the largest batch (as built, 1) and
    the dynamic batcher's queue delay (0, 1000, 5000 µs). A change is kept only when it is at least
    3 % faster; making a network's files counts against --budget. The table of what was tried goes
    to NAME/tune.md and NAME/tune.json; the winner is written into the configs, with its network's
    files (restart the server to use it). python-onnx repositories only: the bundled server has
    only the Python backend.
    """
    from builder.quantization.options import Int8Options
    from builder.tune import report, save, search
    from builder.tune_runtimes import Networks
    from builder.tune_settings import ServedModel

    try:
        if (
            calibration_images is None
            and click.get_current_context().get_parameter_source("max_drop")
            is not click.core.ParameterSource.DEFAULT
        ):
            raise BuildError("--max-drop goes with --calibration-images (INT8 is tried only with them)")
        int8 = Int8Options(calibration_images, max_drop) if calibration_images is not None else None
        served = ServedModel.read(repository, name)
        with tempfile.TemporaryDirectory(prefix="build-repo-tune-networks-") as work:
            networks = Networks(repository, served, images, Path(work), int8, progress=_progress)
            result = search(
                repository, served, images, concurrency, budget_s, progress=_progress, networks=networks
            )
            written = save(repository, served, result, apply=not dry_run, networks=networks)
    except BuildError as exc:
        click.echo(f"build-repo tune: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except OSError as exc:
        where = exc.filename or repository
        click.echo(f"build-repo tune: error: cannot write {where}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(report(result), nl=False)
    gain = result.best.throughput / result.start.throughput
    ended = "; the budget ended the search" if result.stopped_by_budget else ""
    click.echo(
        f"{len(result.trials)} settings tried{ended}. Chosen: {result.best.setting.label()}, "
        f"{result.best.throughput:.2f} images/s at {concurrency} in flight "
        f"({gain:.2f} × the repository's own)."
    )
    if written:
        click.echo(
            f"Written into {len(written)} files (configs and network) under {repository}; "
            "restart the server to use them."
        )
    else:
        click.echo("Configs left as they were (--dry-run)." if dry_run else "")
    click.echo(f"Table: {repository / name / 'tune.md'}")


def _progress(line: str) -> None:
    click.echo(f"build-repo tune: {line}", err=True)
