"""``build-repo``'s options, declared once: each group of the build (model, output, runtime,
batching, engine) as a tuple of click decorators. ``builder.option_parsing`` puts them on the
command and turns what they parse into one ``BuildOptions``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from builder.options import DEFAULT_ONNX_TOLERANCE, BatchingOptions, BuildOptions, RuntimeOptions
from builder.quantization.options import DEFAULT_MAX_DROP, HELD_OUT_EVERY
from builder.runtimes import RUNTIMES
from builder.tensorrt.options import DEFAULT_WORKSPACE_GIB, BatchProfile
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS, MAX_DET_CEILING

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# the options only a TensorRT engine takes (--fp16/--int8 set precision)
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
# the options of --int8 on a CPU runtime (NNCF, with the accuracy guard)
QUANTIZE_PARAMETERS = ("calibration_images", "max_drop", "accept_drop")


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
        help="python-onnx and python-openvino: serve YOLOv8-seg as the three-model ensemble "
        "(<name>_preprocess → <name>_model → <name>_postprocess) instead of one Python model "
        "<name> that runs the same three steps in one process. Slower on the CPU (the server "
        "copies each image's network input and outputs between the processes), but each step is "
        "a model of its own, to measure or scale apart. The other runtimes and families always "
        "serve the ensemble.",
    ),
    click.option(
        "--square",
        is_flag=True,
        help="python-onnx or python-openvino YOLOv8-seg served as one model: pad every image to "
        "the full --imgsz square (ultralytics' predict(rect=False)) instead of only to a multiple "
        "of the stride, as predict does by default; the network then takes one shape. The "
        "ensemble always pads to the square.",
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
        help="INT8. python-openvino and openvino: NNCF quantization calibrated on --calibration-images, "
        "refused when its answers move from FP32's beyond --max-drop. TensorRT: INT8 with FP16 "
        "fallback, calibrated on --images (or a --calibration-cache).",
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

QUANTIZE_OPTIONS: tuple[Decorator, ...] = (
    click.option(
        "--calibration-images",
        type=click.Path(path_type=Path),
        default=None,
        help="--int8 on python-openvino or openvino: a folder of images like those the model will "
        f"serve (a few hundred; at least 5). Every {HELD_OUT_EVERY}th is held out to measure how far "
        "INT8's answers move from FP32's: mask mAP50 against FP32's detections (instance "
        "segmentation), top-1 agreement (classifiers), class-map mIoU (semantic).",
    ),
    click.option(
        "--max-drop",
        type=click.FloatRange(min=0),
        default=DEFAULT_MAX_DROP,
        show_default=True,
        help="--int8: the largest drop allowed, in points of that measure (100 = FP32's own answers).",
    ),
    click.option(
        "--accept-drop",
        is_flag=True,
        help="--int8: build even when the drop is beyond --max-drop (the record says it was accepted).",
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

OPTION_GROUPS = (
    MODEL_OPTIONS,
    OUTPUT_OPTIONS,
    RUNTIME_OPTIONS,
    BATCHING_OPTIONS,
    ENGINE_OPTIONS,
    QUANTIZE_OPTIONS,
)
