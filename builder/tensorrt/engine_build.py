"""Build ``model.plan`` with Polygraphy, check it against onnxruntime, and say what it was built on.

Needs TensorRT and a GPU: the build image in docker/ has both. Everything it calls into is in the
sibling modules, which work (and are tested) without TensorRT.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path

from builder.errors import BuildError
from builder.tensorrt.compare import OutputError, compare_runners, onnxruntime_reference
from builder.tensorrt.loaders import engine_loaders
from builder.tensorrt.options import EngineOptions, default_timing_cache
from segcontract.engines import EngineRecord, local_gpus


class TensorRTMissing(BuildError):
    """``import tensorrt`` failed: the build belongs in the build image (the CLI prints how)."""


def require_tensorrt():
    # CUDA's device 0 is then nvidia-smi's first GPU, the one engine.json records
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTMissing(
            f"--runtime tensorrt needs TensorRT, which does not import here ({exc}); "
            "run the same build in the build image (docker/build.Dockerfile, see the README's GPU section)"
        ) from None
    return tensorrt


def build_engine(
    onnx_path: Path,
    plan_path: Path,
    inputs: Mapping[str, tuple[int, ...]],
    options: EngineOptions,
    check_feeds: list[dict],
    calibration_feeds: Iterable[dict] | None,
    calibration_cache: Path,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[EngineRecord, list[OutputError]]:
    """Build, save and check the engine; returns its record and the check's per-output errors."""
    trt = require_tensorrt()
    from polygraphy.backend.trt import Calibrator, TrtRunner
    from polygraphy.exception import PolygraphyException

    gpus = local_gpus(device=build_device())
    if not gpus:
        raise BuildError(
            "no NVIDIA GPU visible (nvidia-smi finds none); a TensorRT engine is built on the GPU "
            "that will serve it: run with --gpus (docker) on that machine"
        )
    gpu = gpus[0]
    timing_cache = writable_timing_cache(
        options.timing_cache or default_timing_cache(trt.__version__, gpu.name), progress
    )
    calibrator = None
    if options.precision == "int8":
        if options.calibration_cache is not None and options.calibration_cache.is_file():
            progress(f"int8: reusing calibration cache {options.calibration_cache}")
        calibrator = Calibrator(calibration_feeds or [], cache=str(calibration_cache))
    profile = options.profile
    progress(
        f"building TensorRT {trt.__version__} engine on {gpu.name} ({options.precision}, batch "
        f"{profile.min}/{profile.opt}/{profile.max}, workspace {options.workspace_gib:g} GiB, "
        f"timing cache {timing_cache}); this takes minutes"
    )
    tolerance = options.check_tolerance
    try:
        engine = engine_loaders(onnx_path, plan_path, inputs, options, timing_cache, calibrator)()
        progress(
            f"comparing the engine with onnxruntime on {len(check_feeds)} batches ({tolerance.describe()})"
        )
        errors = compare_runners(
            TrtRunner(engine, name="tensorrt"), onnxruntime_reference(onnx_path), check_feeds, tolerance
        )
    except PolygraphyException as exc:  # parse errors, out of memory, a calibration without data...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(
            f"TensorRT engine build failed: {reason} (the lines above give TensorRT's log)"
        ) from None
    record = EngineRecord(
        tensorrt_version=trt.__version__,
        gpu=gpu,
        precision=options.precision,
        min_batch=profile.min,
        opt_batch=profile.opt,
        max_batch=profile.max,
        polygraphy_version=metadata.version("polygraphy"),
    )
    return record, errors


def build_device() -> str:
    """The GPU TensorRT builds on: CUDA device 0, i.e. the first of CUDA_VISIBLE_DEVICES if set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


def writable_timing_cache(path: Path, progress: Callable[[str], None]) -> Path:
    """``path`` if this user may write it (and its lock file); else a private one, said so. A cache
    volume shared by root (compose) and a user's own uid (docker run --user) is the usual case."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for candidate in (path, path.with_name(path.name + ".lock")):
            if candidate.exists() and not os.access(candidate, os.W_OK):
                raise PermissionError(candidate)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(path.parent)
        return path
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"segstack-{os.getuid()}" / path.name
        fallback.parent.mkdir(parents=True, exist_ok=True)
        progress(f"timing cache {path} is not writable here ({exc}); using {fallback}")
        return fallback
