"""``build-repo``: a checkpoint in, a Triton model repository out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from builder.errors import BuildError
from builder.runtimes import RUNTIMES


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: comma-separated integers, e.g. 2,4", param_hint="--preferred-batch-sizes"
        ) from None
    if any(v < 1 for v in sizes):
        raise click.BadParameter("batch sizes must be at least 1", param_hint="--preferred-batch-sizes")
    return sizes


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--model",
    "model",
    required=True,
    help="Model name: yolov8{n,s,m,l,x}-seg (also yolo11*-seg), or smp for a seg-train semantic "
    "checkpoint. Picks the family, and YOLO's pretrained weights when --weights is not given.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint to build from (.pt). Default: ultralytics' pretrained weights for --model "
    "(needs internet).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("model_repository"),
    help="Model repository to write into; other models in it are left alone.",
)
@click.option(
    "--runtime",
    type=click.Choice(list(RUNTIMES)),
    default="python-onnx",
    help="How the network is served: " + "; ".join(f"{r.name}: {r.help}" for r in RUNTIMES.values()),
)
@click.option(
    "--imgsz",
    type=click.IntRange(min=32),
    default=None,
    help="Square input size of the served model. Default: the checkpoint's training imgsz.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(1, 1024),
    default=8,
    help="max_batch_size of every model; the model step batches requests dynamically.",
)
@click.option("--name", default=None, help="Ensemble name clients use. Default: the --model value.")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, help="Default confidence threshold.")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.7, help="Default NMS IoU threshold.")
@click.option(
    "--max-det", type=click.IntRange(1, 10000), default=300, help="Default maximum detections per image."
)
@click.option(
    "--instances",
    type=click.IntRange(1, 64),
    default=1,
    help="Instances of each model (instance_group count). On a 2-core CPU: --instances 2 --threads 1.",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 256),
    default=0,
    help="Intra-op threads of each network instance (0: all cores). Instances × threads ≈ cores is the "
    "throughput setting; one instance with all cores the latency setting.",
)
@click.option(
    "--preferred-batch-sizes",
    default="",
    help="Dynamic batching: comma-separated batch sizes the scheduler prefers to form (e.g. 2,4).",
)
@click.option(
    "--max-queue-delay-us",
    type=click.IntRange(0),
    default=0,
    help="Dynamic batching: how long a request may wait for others to form a batch.",
)
@click.option("--atol", type=float, default=1e-3, help="Absolute tolerance of the ONNX vs PyTorch check.")
@click.option("--rtol", type=float, default=1e-3, help="Relative tolerance of the ONNX vs PyTorch check.")
@click.option(
    "--size",
    type=(click.IntRange(32), click.IntRange(32)),
    default=None,
    metavar="W H",
    help="smp: input width and height (multiples of the encoder's output stride). Default: the checkpoint's.",
)
@click.option(
    "--nhwc", is_flag=True, help="smp: NHWC input named input_1, as the seeds' trtexec commands expect."
)
@click.option("--arch", default=None, help="smp: override the architecture the checkpoint records.")
@click.option(
    "--encoder",
    "--backend",
    "encoder",
    default=None,
    help="smp: override the encoder the checkpoint records.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final line.")
def main(
    model,
    weights,
    output,
    runtime,
    imgsz,
    max_batch_size,
    name,
    conf,
    iou,
    max_det,
    instances,
    threads,
    preferred_batch_sizes,
    max_queue_delay_us,
    atol,
    rtol,
    size,
    nhwc,
    arch,
    encoder,
    quiet,
) -> None:
    """Build a Triton model repository from a segmentation checkpoint.

    Exports ONNX with a dynamic batch axis, folds and cleans the graph with onnx-graphsurgeon,
    checks it against the PyTorch model, and writes <name>_preprocess, <name>_model,
    <name>_postprocess and the ensemble <name>, each with a generated config.pbtxt.

    \b
    Examples:
      build-repo --model yolov8n-seg --weights runs/segment/train/weights/best.pt
      build-repo --model smp --weights runs/semantic/roads/best.pth --name roads
      seg-serve --model-repository model_repository
      seg-client infer --source images/ --model yolov8n-seg --out results/
    """
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from builder.build import BuildOptions, build_repository
    from builder.verify import Tolerance

    echo = (lambda m: None) if quiet else (lambda m: click.echo(f"build-repo: {m}", err=True))
    opts = BuildOptions(
        model=model,
        weights=weights,
        output=output,
        runtime=runtime,
        imgsz=imgsz,
        name=name,
        max_batch_size=max_batch_size,
        conf=conf,
        iou=iou,
        max_det=max_det,
        instances=instances,
        threads=threads,
        preferred_batch_sizes=_batch_sizes(preferred_batch_sizes),
        max_queue_delay_us=max_queue_delay_us,
        tolerance=Tolerance(atol, rtol),
        size=size,
        nhwc=nhwc,
        arch=arch,
        encoder=encoder,
    )
    try:
        result = build_repository(opts, progress=echo)
    except BuildError as exc:
        click.echo(f"build-repo: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except OSError as exc:  # the output cannot be written: a file in the way, permissions, disk full
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"build-repo: error: cannot write{where}: {exc.strerror or exc}; check --output", err=True)
        sys.exit(2)
    click.echo(f"Built {opts.name or model} in {result.seconds:.1f} s: {result.repository.resolve()}")
    click.echo(f"Serve it: seg-serve --model-repository {result.repository}")
