"""How the network itself is served: the ``<name>_model`` folder for each ``--runtime``."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence

from builder import triton_config
from builder.errors import BuildError
from builder.exported_network import ExportedNetwork
from builder.model_folder import ModelFolder, python_backend_folder
from builder.quantization.options import Int8Options
from builder.tensorrt.options import EngineOptions
from python_backend_models import model_source
from segcontract.model_metadata import ConfigKeys
from segcontract.registry import Registry
from segcontract.tensors import TensorSpec
from segops.cpu_cores import threads_per_instance


class Runtime(ABC):
    """One ``--runtime``. Every runtime is made from the build's engine options (None unless the
    runtime builds a TensorRT engine) and its INT8 options (None unless a CPU runtime quantizes),
    so that the registry can make any of them the same way."""

    name: str
    help: str
    builds_engine: bool = False  # always builds a TensorRT engine (onnx does only with its accelerator)
    # its <name>_model is a Python-backend model, so the ensemble can fold into one (builder.one_model)
    python_backend: bool = False
    quantizes: bool = False  # --int8 quantizes for the CPU (NNCF), with the accuracy guard

    def __init__(self, engine: EngineOptions | None = None, int8: Int8Options | None = None):
        self.engine = engine
        self.int8 = int8

    @abstractmethod
    def model_folder(
        self, settings: triton_config.ModelSettings, network: ExportedNetwork
    ) -> ModelFolder: ...

    def thread_parameters(self, threads: int | None, instances: int) -> dict[str, int | str]:
        """Config parameters that set the network session's intra-op threads (None: each of the
        ``instances`` takes its share of the cores; 0: each takes all, the runtime's default)."""
        return {}

    @classmethod
    def check_available(cls) -> None:
        """Raise BuildError, before any work, when this runtime cannot be built here."""
        return None  # most runtimes can always be built


RUNTIMES: Registry[type[Runtime]] = Registry("runtime", error=BuildError)


@RUNTIMES.register
class PythonOnnxRuntime(Runtime):
    name = "python-onnx"
    help = (
        "ONNX run by onnxruntime inside Triton's Python backend (pip-only, CPU; what seg-serve runs); "
        "YOLOv8-seg as one Python model unless --ensemble"
    )
    python_backend = True

    def thread_parameters(self, threads, instances):
        # read by onnx_model.py, which shares out the cores the server sees when it is absent
        return {} if threads is None else {"intra_op_threads": threads}

    def model_folder(self, settings, network):
        config = triton_config.python_model_config(settings)
        return python_backend_folder(
            config, "onnx_model", {"1/model.onnx": network.onnx_path, **NETWORK_STEP_FILES}
        )


# what both Python-backend network models import beside them
NETWORK_STEP_FILES = {"1/network_step.py": model_source("network_step")}


@RUNTIMES.register
class PythonOpenVinoRuntime(Runtime):
    name = "python-openvino"
    help = (
        "OpenVINO IR run by OpenVINO's CPU plugin inside Triton's Python backend (pip-only, CPU; "
        "seg-serve), FP32 or --int8; YOLOv8-seg as one Python model unless --ensemble"
    )
    python_backend = True
    quantizes = True

    def thread_parameters(self, threads, instances):
        # read by openvino_model.py, which shares out the cores the server sees when it is absent
        return {} if threads is None else {"intra_op_threads": threads}

    def model_folder(self, settings, network):
        parameters = {**settings.parameters, ConfigKeys.NETWORK_MODULE: "openvino_model"}
        config = triton_config.python_model_config(dataclasses.replace(settings, parameters=parameters))
        return openvino_folder(
            self,
            network,
            lambda ir: python_backend_folder(config, "openvino_model", {**ir.files(), **NETWORK_STEP_FILES}),
        )


@RUNTIMES.register
class OpenVinoRuntime(Runtime):
    name = "openvino"
    help = (
        "OpenVINO IR for Triton's OpenVINO backend (backend openvino; the NGC tritonserver image), "
        "on the CPU, FP32 or --int8; the backend pads every batch to --max-batch-size (keep it small) "
        "and picks the float layers' precision itself (BF16 where the CPU has it)"
    )
    quantizes = True

    def thread_parameters(self, threads, instances):
        # the OpenVINO backend's own keys: one stream per instance, on its share of the cores; it
        # fixes the IR's batch at max_batch_size and refuses smaller batches unless it may pad them
        if threads is None:
            threads = threads_per_instance(instances)
        keys: dict[str, int | str] = {
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_BATCH_PADDING": "YES",
        }
        return {**keys, "INFERENCE_NUM_THREADS": threads} if threads else keys

    def model_folder(self, settings, network):
        config = triton_config.openvino_model_config(settings)
        return openvino_folder(
            self,
            network,
            lambda ir: ModelFolder(settings.name, config, files=ir.files()),
        )


def openvino_folder(runtime: Runtime, network: ExportedNetwork, folder_for) -> ModelFolder:
    """The network as OpenVINO IR (checked, and quantized with --int8) in the folder that
    ``folder_for(ir)`` makes, with the INT8 record and the precision in the model's record."""
    from builder.openvino.network import openvino_network  # openvino loads only for these runtimes

    ir = openvino_network(network, runtime.int8)
    folder = folder_for(ir)
    folder.texts.update(ir.texts())
    folder.record.update({"network_runtime": runtime.name, **ir.record()})
    return folder


@RUNTIMES.register
class OnnxRuntime(Runtime):
    name = "onnx"
    help = (
        "ONNX for Triton's onnxruntime backend (platform onnxruntime_onnx; the NGC tritonserver), "
        "on the CPU, or on the GPU through onnxruntime's TensorRT accelerator with --onnx-tensorrt"
    )

    @property
    def accelerator(self) -> EngineOptions | None:
        """The TensorRT execution accelerator's precision, profile and workspace (--onnx-tensorrt)."""
        return self.engine

    def thread_parameters(self, threads, instances):
        # the onnxruntime backend's own key, a fixed number: the share of this machine's cores
        if threads is None:
            threads = threads_per_instance(instances)
        return {"intra_op_thread_count": threads} if threads else {}

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
    profile as a prebuilt engine, and an engine cache so a reload does not rebuild (int8 is
    refused by RuntimeOptions before a build starts)."""

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


@RUNTIMES.register
class TensorRTRuntime(Runtime):
    name = "tensorrt"
    help = "a TensorRT engine (model.plan, platform tensorrt_plan) built with Polygraphy on this GPU"
    builds_engine = True
    engine: EngineOptions

    def __init__(self, engine: EngineOptions | None = None, int8: Int8Options | None = None):
        super().__init__(engine or EngineOptions(), int8)

    @property
    def options(self) -> EngineOptions:
        return self.engine

    @classmethod
    def check_available(cls) -> None:
        from builder.tensorrt.engine_build import require_tensorrt

        require_tensorrt()

    def model_folder(self, settings, network):
        from builder.tensorrt.runtime_folder import engine_model_folder

        return engine_model_folder(settings, network, self.options)


def io_specs(names: Sequence[str], arrays: Sequence) -> list[TensorSpec]:
    return [TensorSpec.from_numpy(n, a) for n, a in zip(names, arrays)]
