"""``build-repo``: a checkpoint in, a Triton model repository out."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from builder.errors import BuildError
from builder.runtimes import RUNTIMES
from builder.tensorrt.docker_hint import docker_run_line
from builder.tensorrt.engine_build import TensorRTMissing, require_tensorrt
from builder.tensorrt.options import DEFAULT_TOLERANCES, BatchProfile, EngineOptions, EngineTolerance
from segcontract.limits import DEFAULT_MAX_PIXELS

ENGINE_PARAMETERS = (
    "precision",
    "min_batch",
    "opt_batch",
    "workspace",
    "timing_cache",
    "images",
    "calibration_cache",
    "engine_atol",
    "engine_rtol",
)


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
    "--max-batch",
    type=click.IntRange(1, 1024),
    default=8,
    help="max_batch_size of every model; the model step batches requests dynamically. For a TensorRT "
    "engine also the optimization profile's max batch.",
)
@click.option("--name", default=None, help="Ensemble name clients use. Default: the --model value.")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, help="Default confidence threshold.")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.7, help="Default NMS IoU threshold.")
@click.option(
    "--max-det",
    type=click.IntRange(1, 10000),
    default=300,
    help="Maximum detections per image: the default, and a ceiling no request can raise.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    help="Largest image (width × height) the server decodes; larger ones are refused from their "
    "header with INVALID_ARGUMENT. The default holds a 61 MP camera's full frame.",
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
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Load --weights with the full unpickler, which runs any code the file holds. Without it, "
    "a checkpoint naming anything but the model classes a genuine checkpoint holds is refused.",
)
@click.option(
    "--fp16", "precision", flag_value="fp16", help="TensorRT: build (or let --onnx-tensorrt run) in FP16."
)
@click.option(
    "--int8",
    "precision",
    flag_value="int8",
    help="TensorRT: INT8 with FP16 fallback, calibrated on --images (or a --calibration-cache).",
)
@click.option(
    "--min-batch", type=click.IntRange(1, 1024), default=1, help="TensorRT profile: smallest batch served."
)
@click.option(
    "--opt-batch",
    type=click.IntRange(1, 1024),
    default=None,
    help="TensorRT profile: the batch the kernels are tuned for. Default: --max-batch-size.",
)
@click.option(
    "--workspace",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    metavar="GIB",
    help="TensorRT: GPU memory the builder may use for tactics.",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT: tactic timing cache, read and extended by every build (faster rebuilds). "
    "Default: ~/.cache/segstack/tensorrt/timing-<TensorRT>-<GPU>.cache.",
)
@click.option(
    "--images",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="TensorRT: representative images, pre-processed as the server does: --int8 calibrates on all "
    "of them; the engine check runs on the first few (default: generated scenes).",
)
@click.option(
    "--calibration-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT --int8: reuse this calibration cache (build-repo keeps one in <name>_model/).",
)
@click.option(
    "--engine-atol",
    type=float,
    default=None,
    help="Engine vs onnxruntime check: absolute tolerance. Default by precision: fp32 1e-3 per "
    "element; fp16 2e-2 and int8 0.1 on the mean error.",
)
@click.option(
    "--engine-rtol", type=float, default=None, help="Engine vs onnxruntime check: relative tolerance."
)
@click.option(
    "--onnx-tensorrt",
    is_flag=True,
    help="--runtime onnx: run on the GPU through onnxruntime's TensorRT execution accelerator "
    "(engines built by the server at load, cached in /tmp); --fp16 sets its precision mode.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final line.")
@click.pass_context
def main(
    ctx: click.Context,
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
    max_pixels,
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
    trust_checkpoint,
    precision,
    min_batch,
    opt_batch,
    workspace,
    timing_cache,
    images,
    calibration_cache,
    engine_atol,
    engine_rtol,
    onnx_tensorrt,
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
      build-repo --model yolov8x-seg --weights best.pt --runtime tensorrt --fp16 --max-batch 8
      seg-serve --model-repository model_repository
      seg-client infer --source images/ --model yolov8n-seg --out results/

    `build-repo doctor [REPOSITORY]` checks that a repository's TensorRT engines match this
    machine's GPU and TensorRT (see build-repo doctor --help).
    """
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        engine = _engine_options(
            ctx,
            runtime,
            onnx_tensorrt,
            precision,
            min_batch,
            opt_batch,
            max_batch_size,
            workspace,
            timing_cache,
            images,
            calibration_cache,
            engine_atol,
            engine_rtol,
        )
        if runtime == "tensorrt":
            require_tensorrt()  # before the slow imports: without TensorRT the build belongs elsewhere
    except TensorRTMissing as exc:
        _tensorrt_missing(exc)
    except BuildError as exc:
        click.echo(f"build-repo: error: {exc}", err=True)
        sys.exit(2)
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
        max_pixels=max_pixels,
        instances=instances,
        threads=threads,
        preferred_batch_sizes=_batch_sizes(preferred_batch_sizes),
        max_queue_delay_us=max_queue_delay_us,
        tolerance=Tolerance(atol, rtol),
        size=size,
        nhwc=nhwc,
        arch=arch,
        encoder=encoder,
        trust_checkpoint=trust_checkpoint,
        engine=engine,
        onnx_tensorrt=onnx_tensorrt,
    )
    try:
        result = build_repository(opts, progress=echo)
    except TensorRTMissing as exc:
        _tensorrt_missing(exc)
    except BuildError as exc:
        click.echo(f"build-repo: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except OSError as exc:  # the output cannot be written: a file in the way, permissions, disk full
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"build-repo: error: cannot write{where}: {exc.strerror or exc}; check --output", err=True)
        sys.exit(2)
    click.echo(f"Built {opts.name or model} in {result.seconds:.1f} s: {result.repository.resolve()}")
    click.echo(f"Serve it: seg-serve --model-repository {result.repository}")


def _tensorrt_missing(exc: TensorRTMissing) -> None:
    """One line on stderr, then the docker run line (stdout, to copy or pipe) that does the same build."""
    click.echo(f"build-repo: error: {' '.join(str(exc).split())}:", err=True)
    click.echo(docker_run_line(sys.argv[1:]))
    sys.exit(2)


def _engine_options(
    ctx: click.Context,
    runtime: str,
    onnx_tensorrt: bool,
    precision: str | None,
    min_batch: int,
    opt_batch: int | None,
    max_batch: int,
    workspace: float,
    timing_cache: Path | None,
    images: Path | None,
    calibration_cache: Path | None,
    engine_atol: float | None,
    engine_rtol: float | None,
) -> EngineOptions | None:
    """The engine options, or None when the runtime builds no TensorRT engine (then none may be given)."""
    if runtime != "tensorrt" and not onnx_tensorrt:
        given = [
            f"--{precision}" if p == "precision" else "--" + p.replace("_", "-")
            for p in ENGINE_PARAMETERS
            if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise BuildError(
                f"{', '.join(given)}: TensorRT options; use them with --runtime tensorrt "
                "(or --runtime onnx --onnx-tensorrt)"
            )
        return None
    precision = precision or "fp32"
    if onnx_tensorrt and precision == "int8":
        raise BuildError("--onnx-tensorrt runs fp32 or --fp16; for int8 build a plan with --runtime tensorrt")
    tolerance = None
    if engine_atol is not None or engine_rtol is not None:
        default = DEFAULT_TOLERANCES[precision]
        tolerance = EngineTolerance(
            default.atol if engine_atol is None else engine_atol,
            default.rtol if engine_rtol is None else engine_rtol,
            default.stat,
        )
    return EngineOptions(
        precision=precision,
        profile=BatchProfile(min_batch, opt_batch or max_batch, max_batch),
        workspace_gib=workspace,
        timing_cache=timing_cache,
        images=images,
        calibration_cache=calibration_cache,
        tolerance=tolerance,
    )


def entry() -> None:
    """The ``build-repo`` console script: ``build-repo doctor ...`` or a build."""
    if len(sys.argv) > 1 and sys.argv[1] == "doctor":
        from builder import doctor

        doctor.main.main(sys.argv[2:], prog_name="build-repo doctor")
    else:
        main()
