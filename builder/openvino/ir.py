"""ONNX → OpenVINO IR, compiled for the CPU as the served model compiles it, and run on inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

# what python_backend_models/openvino_model.py compiles with: one stream, and the layers left in
# floating point in FP32 (OpenVINO would pick BF16 where the CPU has it, and drift from PyTorch)
CPU_CONFIG = {
    "PERFORMANCE_HINT": "LATENCY",
    "NUM_STREAMS": "1",
    "INFERENCE_PRECISION_HINT": "f32",
    "ENABLE_CPU_PINNING": "NO",  # several compiled models in one process would pin the same cores
}


def read_onnx(onnx_path: Path) -> ov.Model:
    return ov.convert_model(str(onnx_path))


def compile_on_cpu(model: ov.Model, threads: int = 0) -> ov.CompiledModel:
    config = dict(CPU_CONFIG)
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(model, "CPU", config)


def run(compiled: ov.CompiledModel, x: np.ndarray) -> list[np.ndarray]:
    """The outputs for one input, in the model's output order."""
    results = compiled.create_infer_request().infer({0: x})
    return [np.asarray(results[port]) for port in compiled.outputs]


def output_names(model: ov.Model) -> list[str]:
    return [port.get_any_name() for port in model.outputs]


def save(model: ov.Model, folder: Path) -> tuple[Path, Path]:
    """``model.xml`` and ``model.bin`` in ``folder`` (weights not compressed to FP16)."""
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml, xml.with_suffix(".bin")


def read_ir(xml: Path) -> ov.Model:
    return ov.Core().read_model(str(xml))
