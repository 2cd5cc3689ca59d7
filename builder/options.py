"""What a build is asked for, in groups that each check themselves.

``build-repo``'s options are parsed into one object per group (model, batching, runtime, engine),
as Polygraphy parses its argument groups, and ``BuildOptions`` holds the groups and the checks
that span them. Click's types check single values (ranges, paths); these dataclasses check what
needs meaning or more than one value, and each check lives in exactly one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder import triton_config
from builder.errors import BuildError
from builder.quantization.options import Int8Options
from builder.runtimes import RUNTIMES, OnnxRuntime, PythonOnnxRuntime, Runtime
from builder.settings import DEFAULT_ONNX_TOLERANCE, BuildSettings, LoadRequest
from builder.tensorrt.options import DEFAULT_MAX_BATCH, BatchProfile, EngineOptions
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS

ENGINE_RUNTIMES = "--runtime tensorrt (or --runtime onnx --onnx-tensorrt)"
QUANTIZING_RUNTIMES = ", ".join(f"--runtime {name}" for name, r in RUNTIMES.items() if r.quantizes)


@dataclass(frozen=True)
class ModelOptions:
    """The checkpoint to load, the served ensemble's name and defaults, and the ONNX check.

    The name and the pixel limit are checked by ``BuildSettings``, the input size by the family.
    """

    request: LoadRequest
    name: str | None = None  # default: the --model value
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET
    max_pixels: int = DEFAULT_MAX_PIXELS
    atol: float = DEFAULT_ONNX_TOLERANCE
    rtol: float = DEFAULT_ONNX_TOLERANCE

    @property
    def served_name(self) -> str:
        return self.name or self.request.model


@dataclass(frozen=True)
class BatchingOptions:
    """How many images one model call takes, and how Triton forms and spreads the batches."""

    max_batch_size: int = DEFAULT_MAX_BATCH
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    instances: int = 2  # two of each model: one runs while the other's request is decoded or sent

    def __post_init__(self) -> None:
        too_big = [b for b in self.preferred_batch_sizes if b > self.max_batch_size]
        if too_big:
            raise BuildError(
                f"--preferred-batch-sizes {too_big} exceed --max-batch-size {self.max_batch_size}"
            )

    def dynamic_batching(self) -> triton_config.DynamicBatching:
        return triton_config.DynamicBatching(self.max_queue_delay_us, self.preferred_batch_sizes)


@dataclass(frozen=True)
class RuntimeOptions:
    """Which runtime serves the network, with how many threads, and onnx's TensorRT accelerator."""

    name: str = PythonOnnxRuntime.name
    threads: int | None = None  # intra-op threads of each network session; None: a share of the cores; 0: all
    onnx_tensorrt: bool = False
    ensemble: bool = False  # python-onnx: the three-model ensemble even where one model would do
    square: bool = False  # the one model: pad to the full square, not only to the stride

    def __post_init__(self) -> None:
        RUNTIMES.lookup(self.name)
        if self.onnx_tensorrt and self.name != OnnxRuntime.name:
            raise BuildError(f"--onnx-tensorrt is an option of --runtime onnx, not {self.name}")
        if self.square and not self.folds_ensemble:
            raise BuildError(
                "--square is an option of the one Python model (--runtime python-onnx or "
                "python-openvino, without --ensemble); the ensemble always pads to the square"
            )

    @property
    def folds_ensemble(self) -> bool:
        """Whether a family with a one-process model serves it (builder.one_model)."""
        return RUNTIMES[self.name].python_backend and not self.ensemble

    @property
    def rect_input(self) -> bool:
        """Whether a family that can take inputs padded only to its stride is served so: only in
        the one model, where no tensor between models has to keep one shape."""
        return self.folds_ensemble and not self.square

    @property
    def builds_engine(self) -> bool:
        return RUNTIMES[self.name].builds_engine or self.onnx_tensorrt

    @property
    def quantizes(self) -> bool:
        """Whether --int8 means NNCF's quantization for the CPU (with the accuracy guard)."""
        return RUNTIMES[self.name].quantizes

    def check_int8(self, int8: Int8Options | None) -> None:
        if int8 is not None and not self.quantizes:
            raise BuildError(
                "--calibration-images, --max-drop and --accept-drop go with --int8 on "
                f"{QUANTIZING_RUNTIMES}, not --runtime {self.name}"
            )

    def refuse_engine_options(self, given: Sequence[str] = ()) -> None:
        """Refuse engine options to a runtime that builds no engine; ``given`` names the flags."""
        if self.builds_engine:
            return
        if given:
            raise BuildError(f"{', '.join(given)}: TensorRT options; use them with {ENGINE_RUNTIMES}")
        raise BuildError(
            f"--fp16, --int8, --min-batch, --opt-batch, --workspace and the engine options apply to "
            f"{ENGINE_RUNTIMES}"
        )

    def check_precision(self, precision: str) -> None:
        """Checked before the engine options are made: their own checks (int8 calibration) come second."""
        if self.onnx_tensorrt and precision == "int8":
            raise BuildError(
                "--onnx-tensorrt runs fp32 or --fp16; for int8 build a plan with --runtime tensorrt"
            )

    def check_engine(self, engine: EngineOptions | None) -> None:
        """Whether this runtime takes ``engine``: options made elsewhere than from the command line."""
        if engine is not None:
            self.refuse_engine_options()
            self.check_precision(engine.precision)

    def check_available(self) -> None:
        """Raise, before any slow work, when this runtime cannot be built on this machine."""
        RUNTIMES[self.name].check_available()

    def make(self, engine: EngineOptions | None = None, int8: Int8Options | None = None) -> Runtime:
        """The runtime; ``engine`` (default: EngineOptions()) only where it builds an engine,
        ``int8`` only where it quantizes for the CPU."""
        self.check_engine(engine)
        self.check_int8(int8)
        if self.builds_engine:
            engine = engine or EngineOptions()
        return RUNTIMES[self.name](engine, int8)


def make_runtime(name: str, engine: EngineOptions | None = None, onnx_tensorrt: bool = False) -> Runtime:
    """``RuntimeOptions(name, onnx_tensorrt=...).make(engine)``, for callers without the other groups."""
    return RuntimeOptions(name, onnx_tensorrt=onnx_tensorrt).make(engine)


@dataclass(frozen=True)
class BuildOptions:
    """Every group of a build, and the checks between groups. Where the runtime builds a TensorRT
    engine and none is given, the engine options default to a profile of 1 to --max-batch-size."""

    model: ModelOptions
    output: Path = Path("model_repository")
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    engine: EngineOptions | None = None
    int8: Int8Options | None = None  # a CPU runtime's --int8

    def __post_init__(self) -> None:
        self.runtime.check_engine(self.engine)
        self.runtime.check_int8(self.int8)
        max_batch = self.batching.max_batch_size
        if self.engine is None and self.runtime.builds_engine:
            object.__setattr__(self, "engine", EngineOptions(profile=BatchProfile(1, max_batch, max_batch)))
        if self.engine is not None and self.engine.profile.max != max_batch:
            raise BuildError(
                f"the engine's max batch {self.engine.profile.max} must be --max-batch-size {max_batch}"
            )

    def settings(self) -> BuildSettings:
        """What the families need; checks the ensemble name and the pixel limit."""
        return BuildSettings(
            name=self.model.served_name,
            max_batch_size=self.batching.max_batch_size,
            conf=self.model.conf,
            iou=self.model.iou,
            max_det=self.model.max_det,
            max_pixels=self.model.max_pixels,
            instances=self.batching.instances,
            max_queue_delay_us=self.batching.max_queue_delay_us,
        )
