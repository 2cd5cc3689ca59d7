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
        feeds = {name: [] for name in self.input_names}
        counts = []
        for request in requests:
            for name in self.input_names:
                feeds[name].append(pb_utils.get_input_tensor_by_name(request, name).as_numpy())
            counts.append(feeds[self.input_names[0]][-1].shape[0])
        batch = {name: np.concatenate(parts) if len(parts) > 1 else parts[0] for name, parts in feeds.items()}
        try:
            outputs = self.session.run(self.output_names, batch)
        except Exception:
            return [self._alone(request) for request in requests]
        responses, start = [], 0
        for n in counts:
            tensors = [
                pb_utils.Tensor(name, out[start : start + n]) for name, out in zip(self.output_names, outputs)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def _alone(self, request):
        try:
            feed = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names
            }
            outputs = self.session.run(self.output_names, feed)
        except Exception as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"model failed: {type(exc).__name__}: {exc}")
            )
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, out) for name, out in zip(self.output_names, outputs)]
        )
