"""Triton Python-backend model that runs ``model.xml`` (OpenVINO IR, beside this file) on the CPU.

This is the ``python-openvino`` runtime, for the tritonserver of the nvidia-pytriton wheel (Python
backend only): the same requests, batching and answers as ``onnx_model.py``, with OpenVINO's CPU
plugin in place of onnxruntime. The IR is FP32, or INT8 where build-repo quantized it (NNCF); the
layers left in floating point run in FP32 (``INFERENCE_PRECISION_HINT``), never BF16, whose
answers drift from PyTorch's. One stream per instance, its threads as onnx_model.py shares them,
not pinned to cores: each instance is its own process, and each would pin to the same first cores.
"""

import json
import os

import openvino as ov
from network_step import network_responses

from segops.batched_runs import run_batches
from segops.cpu_cores import configured_threads
from segops.triton_params import config_parameters

MODEL_FILE = "model.xml"


def compile_on_cpu(path, threads):
    """The IR at ``path`` compiled for one stream of ``threads`` (0: OpenVINO's default) threads."""
    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": "f32",
              "ENABLE_CPU_PINNING": "NO"}  # fmt: skip
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(path, "CPU", config)


class TritonPythonModel:
    def initialize(self, args):
        params = config_parameters(args["model_config"])
        threads, shared_out = configured_threads(params, json.loads(args["model_config"]))
        if shared_out:
            print(f"{args['model_name']}: {shared_out}", flush=True)  # into the server's log
        here = os.path.dirname(os.path.abspath(__file__))
        self.compiled = compile_on_cpu(os.path.join(here, MODEL_FILE), threads)
        self.request = self.compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]

    def execute(self, requests):
        return network_responses(self, requests)

    def _run(self, batch):
        results = self.request.infer(batch)  # copies of the outputs (share_outputs=False)
        return [results[port] for port in self.compiled.outputs]

    def run_batches(self, feeds):
        """As onnx_model.py's: what yolo_seg_pipeline.py runs its batches with."""
        return run_batches(self._run, feeds, self.input_names)
