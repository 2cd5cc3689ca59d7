"""How the network itself is served: the ``<name>_model`` folder for each ``--runtime``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from builder import triton_config
from builder.errors import BuildError
from builder.model_folder import ModelFolder, python_backend_folder
from builder.tensors import TensorSpec


class Runtime(ABC):
    name: str
    help: str

    @abstractmethod
    def model_folder(self, settings: triton_config.ModelSettings, onnx_path: Path) -> ModelFolder: ...

    def thread_parameters(self, threads: int) -> dict[str, int]:
        """Config parameters that set the network session's intra-op threads (0: runtime default)."""
        return {}

    def check_available(self) -> None:
        """Raise BuildError, before any work, when this runtime cannot be built here."""
        return None  # most runtimes can always be built


class PythonOnnxRuntime(Runtime):
    name = "python-onnx"

    def thread_parameters(self, threads: int) -> dict[str, int]:
        return {"intra_op_threads": threads} if threads else {}  # read by models/onnx_model.py

    help = "ONNX run by onnxruntime inside Triton's Python backend (pip-only, CPU; what seg-serve runs)"

    def model_folder(self, settings, onnx_path):
        config = triton_config.python_model_config(settings)
        return python_backend_folder(config, "onnx_model", {"1/model.onnx": onnx_path})


class OnnxRuntime(Runtime):
    name = "onnx"

    def thread_parameters(self, threads: int) -> dict[str, int]:
        return {"intra_op_thread_count": threads} if threads else {}  # the onnxruntime backend's own key

    help = "ONNX for Triton's onnxruntime backend (platform onnxruntime_onnx; the NGC tritonserver)"

    def model_folder(self, settings, onnx_path):
        config = triton_config.onnxruntime_model_config(settings)
        return ModelFolder(settings.name, config, files={"1/model.onnx": onnx_path})


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    help = "TensorRT engine built with Polygraphy (not available yet)"

    def check_available(self) -> None:
        raise BuildError(
            "--runtime tensorrt is not available yet (TensorRT engines come in a later release); "
            "use --runtime onnx for the NGC tritonserver or --runtime python-onnx for seg-serve"
        )

    def model_folder(self, settings, onnx_path):  # pragma: no cover - refused in check_available
        self.check_available()
        raise AssertionError


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (PythonOnnxRuntime(), OnnxRuntime(), TensorRTRuntime())}


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise BuildError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}") from None


def io_specs(names: Sequence[str], arrays: Sequence) -> list[TensorSpec]:
    return [TensorSpec.from_numpy(n, a) for n, a in zip(names, arrays)]
