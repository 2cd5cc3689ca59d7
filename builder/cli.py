"""``build-repo``: a checkpoint in, a Triton model repository out; ``build-repo doctor`` checks one,
``build-repo tune`` fits its serving settings to the machine."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from builder.doctor import doctor
from builder.errors import BuildError
from builder.options import (
    DEFAULT_ONNX_TOLERANCE,
    BatchingOptions,
    BuildOptions,
    ModelOptions,
    RuntimeOptions,
)
from builder.runtimes import RUNTIMES
from builder.settings import LoadRequest
from builder.tensorrt.docker_hint import docker_run_line
from builder.tensorrt.engine_build import TensorRTMissing
from builder.tensorrt.options import (
    DEFAULT_WORKSPACE_GIB,
    PRECISIONS,
    BatchProfile,
    EngineOptions,
    engine_tolerance,
)
from builder.tune_cli import tune
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS, MAX_DET_CEILING

if TYPE_CHECKING:
    from builder.build import BuildResult

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
T = TypeVar("T")

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


def _batch_sizes(ctx: click.Context, param: click.Parameter, text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: comma-separated integers, e.g. 2,4", param_hint="--preferred-batch-sizes"
        ) from None
    if any(v < 1 for v in sizes):
        raise click.BadParameter("batch sizes must be at least 1", param_hint="--preferred-batch-sizes")
    return sizes


MODEL_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--model",
        "model",
        default=None,
        help="Model name: yolov8{n,s,m,l,x}-seg (also yolo11*-seg), smp for a seg-train semantic "
        "checkpoint, or classifier for a seg-train classify checkpoint (.ckpt). Picks the family, and "
        "YOLO's pretrained weights when --weights is not given. Required for a build.",
    ),
    click.option(
        "--weights",
        type=click.Path(path_type=Path),
        default=None,
        help="Checkpoint to build from (.pt). Default: ultralytics' pretrained weights for --model "
        "(needs internet).",
    ),
    click.option("--name", default=None, help="Ensemble name clients use. Default: the --model value."),
    click.option(
        "--imgsz",
        type=click.IntRange(min=32),
        default=None,
        help="Square input size of the served model. Default: the checkpoint's training imgsz.",
    ),
    click.option(
        "--size",
        type=(click.IntRange(32), click.IntRange(32)),
        default=None,
        metavar="W H",
        help="smp: input width and height (multiples of the encoder's output stride). "
        "Default: the checkpoint's.",
    ),
    click.option(
        "--nhwc", is_flag=True, help="smp: NHWC input named input_1, as the seeds' trtexec commands expect."
    ),
    click.option("--arch", default=None, help="smp: override the architecture the checkpoint records."),
    click.option(
        "--encoder",
        "--backend",
        "encoder",
        default=None,
        help="smp: override the encoder the checkpoint records.",
    ),
    click.option(
        "--trust-checkpoint",
        is_flag=True,
        help="Load --weights with the full unpickler, which runs any code the file holds. Without it, "
        "a checkpoint naming anything but the model classes a genuine checkpoint holds is refused.",
    ),
    click.option(
        "--conf", type=click.FloatRange(0, 1), default=DEFAULT_CONF, help="Default confidence threshold."
    ),
    click.option(
        "--iou", type=click.FloatRange(0, 1), default=DEFAULT_IOU, help="Default NMS IoU threshold."
    ),
    click.option(
        "--max-det",
        type=click.IntRange(1, MAX_DET_CEILING),
        default=DEFAULT_MAX_DET,
        help="Maximum detections per image: the default, and a ceiling no request can raise.",
    ),
    click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PIXELS,
        help="Largest image (width × height) the server decodes; larger ones are refused from their "
        "header with INVALID_ARGUMENT. The default holds a 61 MP camera's full frame.",
    ),
    click.option(
        "--atol",
        type=float,
        default=DEFAULT_ONNX_TOLERANCE,
        help="Absolute tolerance of the ONNX vs PyTorch check.",
    ),
    click.option(
        "--rtol",
        type=float,
        default=DEFAULT_ONNX_TOLERANCE,
        help="Relative tolerance of the ONNX vs PyTorch check.",
    ),
)

BATCHING_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--max-batch-size",
        "--max-batch",
        type=click.IntRange(1, 1024),
        default=BatchingOptions.max_batch_size,
        help="max_batch_size of every model; the model step batches requests dynamically. For a TensorRT "
        "engine also the optimization profile's max batch.",
    ),
    click.option(
        "--preferred-batch-sizes",
        default="",
        callback=_batch_sizes,
        help="Dynamic batching: comma-separated batch sizes the scheduler prefers to form (e.g. 2,4).",
    ),
    click.option(
        "--max-queue-delay-us",
        type=click.IntRange(0),
        default=BatchingOptions.max_queue_delay_us,
        help="Dynamic batching: how long a request may wait for others to form a batch.",
    ),
    click.option(
        "--instances",
        type=click.IntRange(1, 64),
        default=BatchingOptions.instances,
        help="Instances of each model (instance_group count). With 2 (the default) one instance computes "
        "while the other's request is decoded or sent; 1 with --threads 0 is the latency setting.",
    ),
)

RUNTIME_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--runtime",
        type=click.Choice(list(RUNTIMES)),
        default=RuntimeOptions.name,
        help="How the network is served: " + "; ".join(f"{r.name}: {r.help}" for r in RUNTIMES.values()),
    ),
    click.option(
        "--threads",
        type=click.IntRange(0, 256),
        default=RuntimeOptions.threads,
        help="Intra-op threads of each network instance; 0: all cores each. Default: the cores divided "
        "among the instances (python-onnx: the cores the server sees, when it loads; onnx: this "
        "machine's, written into the config).",
    ),
    click.option(
        "--onnx-tensorrt",
        is_flag=True,
        help="--runtime onnx: run on the GPU through onnxruntime's TensorRT execution accelerator "
        "(engines built by the server at load, cached in /tmp); --fp16 sets its precision mode.",
    ),
    click.option(
        "--ensemble",
        is_flag=True,
        help="python-onnx: serve YOLOv8-seg as the three-model ensemble (<name>_preprocess → "
        "<name>_model → <name>_postprocess) instead of one Python model <name> that runs the same "
        "three steps in one process. Slower on the CPU (the server copies each image's network "
        "input and outputs between the processes), but each step is a model of its own, to measure "
        "or scale apart. The other runtimes and families always serve the ensemble.",
    ),
    click.option(
        "--square",
        is_flag=True,
        help="python-onnx YOLOv8-seg served as one model: pad every image to the full --imgsz "
        "square (ultralytics' predict(rect=False)) instead of only to a multiple of the stride, as "
        "predict does by default; the network then takes one shape. The ensemble always pads to "
        "the square.",
    ),
)

ENGINE_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--fp16", "precision", flag_value="fp16", help="TensorRT: build (or let --onnx-tensorrt run) in FP16."
    ),
    click.option(
        "--int8",
        "precision",
        flag_value="int8",
        help="TensorRT: INT8 with FP16 fallback, calibrated on --images (or a --calibration-cache).",
    ),
    click.option(
        "--min-batch",
        type=click.IntRange(1, 1024),
        default=BatchProfile.min,
        help="TensorRT profile: smallest batch served.",
    ),
    click.option(
        "--opt-batch",
        type=click.IntRange(1, 1024),
        default=None,
        help="TensorRT profile: the batch the kernels are tuned for. Default: --max-batch-size.",
    ),
    click.option(
        "--workspace",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_WORKSPACE_GIB,
        metavar="GIB",
        help="TensorRT: GPU memory the builder may use for tactics.",
    ),
    click.option(
        "--timing-cache",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TensorRT: tactic timing cache, read and extended by every build (faster rebuilds). "
        "Default: ~/.cache/segstack/tensorrt/timing-<TensorRT>-<GPU>.cache.",
    ),
    click.option(
        "--images",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="TensorRT: representative images, pre-processed as the server does: --int8 calibrates on all "
        "of them; the engine check runs on the first few (default: generated scenes).",
    ),
    click.option(
        "--calibration-cache",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TensorRT --int8: reuse this calibration cache (build-repo keeps one in <name>_model/).",
    ),
    click.option(
        "--engine-atol",
        type=float,
        default=None,
        help="Engine vs onnxruntime check: absolute tolerance. Default by precision: fp32 1e-3 per "
        "element; fp16 2e-2 and int8 0.1 on the mean error.",
    ),
    click.option(
        "--engine-rtol", type=float, default=None, help="Engine vs onnxruntime check: relative tolerance."
    ),
)

OUTPUT_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--output",
        "-o",
        type=click.Path(path_type=Path),
        default=BuildOptions.output,
        help="Model repository to write into; other models in it are left alone.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final line."),
)

OPTION_GROUPS = (MODEL_OPTIONS, OUTPUT_OPTIONS, RUNTIME_OPTIONS, BATCHING_OPTIONS, ENGINE_OPTIONS)


def _parse(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    """The command line's options, each into its group: the one place the groups are made."""
    if params["model"] is None:
        raise click.MissingParameter(ctx=ctx, param=_parameter(ctx, "model"))
    runtime = RuntimeOptions(
        params["runtime"], params["threads"], params["onnx_tensorrt"], params["ensemble"], params["square"]
    )
    engine = _engine(ctx, runtime, params)  # before the other groups: its errors come first
    model = _group(ModelOptions, params, request=_group(LoadRequest, params, rect=False))  # set by the build
    batching = _group(BatchingOptions, params)
    return BuildOptions(model, params["output"], batching=batching, runtime=runtime, engine=engine)


def _group(cls: type[T], params: dict[str, Any], **given: Any) -> T:
    """A group from the command-line parameters named as its fields (and ``given``)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    return cls(**{name: params[name] for name in names}, **given)


def _engine(ctx: click.Context, runtime: RuntimeOptions, params: dict[str, Any]) -> EngineOptions | None:
    """The engine options, or None when the runtime builds no TensorRT engine (then none may be given)."""
    given = _given(ctx, ENGINE_PARAMETERS)
    if given:
        runtime.refuse_engine_options(given)
    if not runtime.builds_engine:
        return None
    precision = params["precision"] or PRECISIONS[0]
    runtime.check_precision(precision)
    max_batch = params["max_batch_size"]
    return EngineOptions(
        precision=precision,
        profile=BatchProfile(params["min_batch"], params["opt_batch"] or max_batch, max_batch),
        workspace_gib=params["workspace"],
        timing_cache=params["timing_cache"],
        images=params["images"],
        calibration_cache=params["calibration_cache"],
        tolerance=engine_tolerance(precision, params["engine_atol"], params["engine_rtol"]),
    )


def _parameter(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


def _given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """The flags of the parameters ``names`` that the command line gave (--fp16/--int8 set precision)."""
    return [
        f"--{ctx.params[name]}" if name == "precision" else "--" + name.replace("_", "-")
        for name in names
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]


def _refuse_build_options(ctx: click.Context) -> None:
    """``build-repo --fp16 doctor``: build options mean nothing to a subcommand."""
    given = _given(ctx, dict.fromkeys(p.name for p in ctx.command.params if p.name))
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: build options; give them without a subcommand "
            f"(build-repo {ctx.invoked_subcommand} takes its own)"
        )


def build_options(command: Callable[[BuildOptions, bool], None]) -> Callable[..., None]:
    """Declare every build option, and call ``command`` with them parsed into one BuildOptions and
    --quiet. When a subcommand (doctor) runs instead of a build, ``command`` is not called."""

    @functools.wraps(command)
    def callback(**params: Any) -> None:
        ctx = click.get_current_context()
        if ctx.invoked_subcommand is not None:
            _refuse_build_options(ctx)
            return
        quiet = params.pop("quiet")
        with _user_errors():
            options = _parse(ctx, params)
        command(options, quiet)

    for group in reversed(OPTION_GROUPS):
        for option in reversed(group):
            callback = option(callback)
    return callback


@click.group(
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@build_options
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
    with _user_errors():
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


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A mistake the user can fix: one line on stderr and exit 2, no traceback."""
    try:
        yield
    except TensorRTMissing as exc:
        _tensorrt_missing(exc)
    except BuildError as exc:
        click.echo(f"build-repo: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)


def _tensorrt_missing(exc: TensorRTMissing) -> None:
    """One line on stderr, then the docker run line (stdout, to copy or pipe) that does the same build."""
    click.echo(f"build-repo: error: {' '.join(str(exc).split())}:", err=True)
    click.echo(docker_run_line(sys.argv[1:]))
    sys.exit(2)


def entry() -> None:
    """The ``build-repo`` console script: a build, or ``build-repo doctor``."""
    main()
