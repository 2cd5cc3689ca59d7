"""What a TensorRT build is asked for: precision, batch profile, workspace, caches, check tolerances."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import BuildError

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_MAX_BATCH = 8  # max_batch_size of every model, and the profile's max batch
DEFAULT_WORKSPACE_GIB = 4.0


@dataclass(frozen=True)
class BatchProfile:
    """The optimization profile's batch sizes; the other input dimensions are the model's own."""

    min: int = 1
    opt: int = DEFAULT_MAX_BATCH
    max: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise BuildError(
                f"batch profile min {self.min}, opt {self.opt}, max {self.max}: "
                "need 1 <= --min-batch <= --opt-batch <= --max-batch"
            )

    def shapes(self, dims: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes of an input whose non-batch dimensions are ``dims``."""
        return (self.min, *dims), (self.opt, *dims), (self.max, *dims)


@dataclass(frozen=True)
class EngineTolerance:
    """How close the engine's outputs must be to onnxruntime's, per output.

    ``stat`` is Polygraphy's check_error_stat: ``elemwise`` fails on any element beyond both
    tolerances; ``mean`` compares the mean absolute and mean relative error (either may pass).
    """

    atol: float
    rtol: float
    stat: str = "elemwise"

    def describe(self) -> str:
        what = "every element" if self.stat == "elemwise" else f"{self.stat} error"
        return f"{what} within atol={self.atol:g} or rtol={self.rtol:g}"


# fp32 runs with TF32 off, so it matches onnxruntime to float rounding. Reduced precision differs
# element by element (fp16 has 11 significant bits; boxes are in pixels up to the input size),
# so those are checked on the mean error: a wrong engine is off by orders of magnitude more.
DEFAULT_TOLERANCES = {
    "fp32": EngineTolerance(1e-3, 1e-3, "elemwise"),
    "fp16": EngineTolerance(2e-2, 2e-2, "mean"),
    "int8": EngineTolerance(1e-1, 1e-1, "mean"),
}


def engine_tolerance(precision: str, atol: float | None, rtol: float | None) -> EngineTolerance | None:
    """--engine-atol/--engine-rtol over the precision's default; None (the default) when neither is given."""
    if atol is None and rtol is None:
        return None
    default = DEFAULT_TOLERANCES[precision]
    return EngineTolerance(
        default.atol if atol is None else atol, default.rtol if rtol is None else rtol, default.stat
    )


@dataclass
class EngineOptions:
    precision: str = PRECISIONS[0]
    profile: BatchProfile = field(default_factory=BatchProfile)
    workspace_gib: float = DEFAULT_WORKSPACE_GIB
    timing_cache: Path | None = None  # None: default_timing_cache() for this GPU and TensorRT
    images: Path | None = None  # int8 calibration data and the engine check's images
    calibration_cache: Path | None = None  # reuse this cache (skips calibration); else a fresh one
    check_images: int = 4
    tolerance: EngineTolerance | None = None  # None: DEFAULT_TOLERANCES[precision]

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BuildError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        reusable_cache = self.calibration_cache is not None and self.calibration_cache.is_file()
        if self.precision == "int8" and self.images is None and not reusable_cache:
            raise BuildError(
                "--int8 needs calibration data: --images DIR (a few hundred representative images), "
                "or --calibration-cache FILE from an earlier build"
            )
        if self.workspace_gib <= 0:
            raise BuildError(f"--workspace {self.workspace_gib}: give the GiB TensorRT may use, e.g. 4")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gib * (1 << 30))

    @property
    def check_tolerance(self) -> EngineTolerance:
        return self.tolerance or DEFAULT_TOLERANCES[self.precision]


def default_timing_cache(tensorrt_version: str, gpu_name: str) -> Path:
    """One timing cache per TensorRT version and GPU, reused by every build on this machine."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segstack" / "tensorrt"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{tensorrt_version}-{gpu_name}").strip("-")
    return root / f"timing-{slug}.cache"
