"""How the network itself is served: the ``<name>_model`` folder for each ``--runtime``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder import triton_config
from builder.errors import BuildError
from builder.model_folder import ModelFolder, python_backend_folder
from builder.tensorrt.options import EngineOptions
from segcontract.tensors import TensorSpec
from segops.resize import InputSpec


@dataclass
class ExportedNetwork:
    """What a runtime turns into ``<name>_model``: the checked ONNX file and how it is fed."""

    onnx_path: Path
    inputs: dict[str, tuple[int, ...]]  # input name → dimensions without the batch
    input_spec: InputSpec  # how the server's preprocess model prepares an image for it
    samples: list[np.ndarray]  # prepared inputs (the family's check scenes)
    work_dir: Path  # scratch space that lives until the repository is written
    progress: Callable[[str], None] = lambda message: None


class Runtime(ABC):
    name: str
    help: str

    @abstractmethod
    def model_folder(
        self, settings: triton_config.ModelSettings, network: ExportedNetwork
    ) -> ModelFolder: ...

    def thread_parameters(self, threads: int) -> dict[str, int]:
        """Config parameters that set the network session's intra-op threads (0: runtime default)."""
        return {}

    def check_available(self) -> None:
        """Raise BuildError, before any work, when this runtime cannot be built here."""
        return None  # most runtimes can always be built


class PythonOnnxRuntime(Runtime):
    name = "python-onnx"
    help = "ONNX run by onnxruntime inside Triton's Python backend (pip-only, CPU; what seg-serve runs)"

    def thread_parameters(self, threads: int) -> dict[str, int]:
        return {"intra_op_threads": threads} if threads else {}  # read by models/onnx_model.py

    def model_folder(self, settings, network):
        config = triton_config.python_model_config(settings)
        return python_backend_folder(config, "onnx_model", {"1/model.onnx": network.onnx_path})


class OnnxRuntime(Runtime):
    name = "onnx"
    help = (
        "ONNX for Triton's onnxruntime backend (platform onnxruntime_onnx; the NGC tritonserver), "
        "on the CPU, or on the GPU through onnxruntime's TensorRT accelerator with --onnx-tensorrt"
    )

    def __init__(self, accelerator: EngineOptions | None = None):
        self.accelerator = accelerator  # the TensorRT execution accelerator's precision/profile/workspace

    def thread_parameters(self, threads: int) -> dict[str, int]:
        return {"intra_op_thread_count": threads} if threads else {}  # the onnxruntime backend's own key

    def model_folder(self, settings, network):
        accelerator = None
        if self.accelerator is not None:
            accelerator = ort_tensorrt_parameters(settings.name, network.inputs, self.accelerator)
        config = triton_config.onnxruntime_model_config(settings, tensorrt_accelerator=accelerator)
        return ModelFolder(settings.name, config, files={"1/model.onnx": network.onnx_path})


def ort_tensorrt_parameters(
    model_name: str, inputs: dict[str, tuple[int, ...]], options: EngineOptions
) -> dict[str, str]:
    """The onnxruntime backend's TensorRT accelerator keys: precision, workspace, the same batch
    profile as a prebuilt engine, and an engine cache so a reload does not rebuild."""
    if options.precision == "int8":
        raise BuildError(
            "--onnx-tensorrt supports fp32 and --fp16; for int8 build a plan with --runtime tensorrt"
        )

    def shapes(which: int) -> str:
        return ",".join(
            f"{n}:{'x'.join(map(str, options.profile.shapes(d)[which]))}" for n, d in inputs.items()
        )

    return {
        "precision_mode": options.precision.upper(),
        "max_workspace_size_bytes": str(options.workspace_bytes),
        "trt_profile_min_shapes": shapes(0),
        "trt_profile_opt_shapes": shapes(1),
        "trt_profile_max_shapes": shapes(2),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": f"/tmp/segstack-ort-trt/{model_name}",
    }


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    help = "a TensorRT engine (model.plan, platform tensorrt_plan) built with Polygraphy on this GPU"

    def __init__(self, options: EngineOptions):
        self.options = options

    def check_available(self) -> None:
        from builder.tensorrt.engine_build import require_tensorrt

        require_tensorrt()

    def model_folder(self, settings, network):
        from builder.tensorrt.runtime_folder import engine_model_folder

        return engine_model_folder(settings, network, self.options)


RUNTIMES: dict[str, type[Runtime]] = {r.name: r for r in (PythonOnnxRuntime, OnnxRuntime, TensorRTRuntime)}


def make_runtime(name: str, engine: EngineOptions | None = None, onnx_tensorrt: bool = False) -> Runtime:
    """``engine`` carries --fp16/--int8, the batch profile and the workspace; it is used by
    ``tensorrt`` and, with ``onnx_tensorrt``, by ``onnx``'s accelerator."""
    if name not in RUNTIMES:
        raise BuildError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    if onnx_tensorrt and name != "onnx":
        raise BuildError(f"--onnx-tensorrt is an option of --runtime onnx, not {name}")
    builds_engine = name == "tensorrt" or onnx_tensorrt
    if engine is not None and not builds_engine:
        raise BuildError(
            "--fp16, --int8, --min-batch, --opt-batch, --workspace and the engine options apply to "
            "--runtime tensorrt (or --runtime onnx --onnx-tensorrt)"
        )
    engine = engine or EngineOptions()
    if name == "tensorrt":
        return TensorRTRuntime(engine)
    if name == "onnx":
        return OnnxRuntime(engine if onnx_tensorrt else None)
    return PythonOnnxRuntime()


def io_specs(names: Sequence[str], arrays: Sequence) -> list[TensorSpec]:
    return [TensorSpec.from_numpy(n, a) for n, a in zip(names, arrays)]
