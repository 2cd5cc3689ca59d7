"""Triton Python-backend model that runs ``model.onnx`` (beside this file) with onnxruntime.

This is the ``python-onnx`` runtime: the tritonserver shipped in the nvidia-pytriton wheel has only
the Python backend. Requests gathered by dynamic batching are concatenated into one session run.
Input and output names come from the ONNX file; they match the config.pbtxt build-repo wrote.

Without an ``intra_op_threads`` parameter, each instance's session takes its share of the CPUs the
server may use (segops.cpu_cores), so the instances together fill them without fighting over them;
``intra_op_threads`` 0 lets each session take them all (onnxruntime's own default).
"""

import json
import os

import onnxruntime as ort
from network_step import network_responses

from segops.batched_runs import run_batches
from segops.cpu_cores import configured_threads
from segops.triton_params import config_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = config_parameters(args["model_config"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads, shared_out = configured_threads(params, json.loads(args["model_config"]))
        if shared_out:
            print(f"{args['model_name']}: {shared_out}", flush=True)  # into the server's log
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        here = os.path.dirname(os.path.abspath(__file__))
        self.session = ort.InferenceSession(
            os.path.join(here, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        return network_responses(self, requests)

    def run_batches(self, feeds):
        """The outputs of each of ``feeds`` (input name → batch) from one session run over them
        all (segops.batched_runs). Also what yolo_seg_pipeline.py runs its batches with."""
        return run_batches(lambda batch: self.session.run(self.output_names, batch), feeds, self.input_names)
