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

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from segops.cpu_cores import cores_seen, threads_per_instance
from segops.triton_params import config_parameters


class TritonPythonModel:
    def initialize(self, args):
        params = config_parameters(args["model_config"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if "intra_op_threads" in params:
            threads = int(params["intra_op_threads"])
        else:
            groups = json.loads(args["model_config"]).get("instance_group", [])
            instances = sum(int(g.get("count", 1)) for g in groups) or 1
            cores = cores_seen()
            threads = threads_per_instance(instances, cores)
            print(  # into the server's log
                f"{args['model_name']}: {instances} instances on {cores} cores, "
                f"{threads} intra-op threads each",
                flush=True,
            )
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
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}
            for request in requests
        ]
        responses = []
        for outputs in self.run_batches(feeds):
            if isinstance(outputs, Exception):
                error = pb_utils.TritonError(f"model failed: {type(outputs).__name__}: {outputs}")
                responses.append(pb_utils.InferenceResponse(error=error))
            else:
                tensors = [pb_utils.Tensor(name, out) for name, out in zip(self.output_names, outputs)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def run_batches(self, feeds):
        """The outputs of each of ``feeds`` (input name → batch) from one session run over them
        all; when that fails, each alone, so a failure is its own (an Exception in its place).
        Also what yolo_seg_pipeline.py runs its batches with."""
        if not feeds:
            return []
        batch = {
            name: np.concatenate([f[name] for f in feeds]) if len(feeds) > 1 else feeds[0][name]
            for name in self.input_names
        }
        try:
            outputs = self.session.run(self.output_names, batch)
        except Exception:
            return [self._alone(feed) for feed in feeds]
        split, start = [], 0
        for feed in feeds:
            n = feed[self.input_names[0]].shape[0]
            split.append([out[start : start + n] for out in outputs])
            start += n
        return split

    def _alone(self, feed):
        try:
            return self.session.run(self.output_names, feed)
        except Exception as exc:
            return exc
