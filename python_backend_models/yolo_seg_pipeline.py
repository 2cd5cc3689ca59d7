"""Triton Python-backend model: the python-onnx runtime's whole YOLOv8-seg path in one process.

Encoded files → letterboxed input (image_preprocess.py) → the network: onnxruntime on ``model.onnx``
(onnx_model.py), or OpenVINO on ``model.xml`` (openvino_model.py) where the ``network_module``
parameter names it → detections with RLE masks (yolo_seg_postprocess.py): the same code as the
three-model ensemble, whose modules sit beside this file, without its two hops. Through the
ensemble, each image's 640×640 float input (4.9 MB) and the network's raw outputs (7.2 MB) are
copied between Python-backend processes by the server; here they stay in this process's memory.

Each image is letterboxed as the model's record says: with its ``stride`` (build-repo's default
here), padded only to a multiple of it, as ultralytics' ``predict`` does, so a wide image costs the
network fewer pixels; the network takes any height and width. Images of one input shape, from all
the requests dynamic batching gathered, run as one session call.

Inputs and outputs are the ensemble's (``IMAGE`` → boxes, scores, classes, masks, num_detections,
image_size), and so are the request parameters (conf, iou, max_det). A request whose file does not
decode or whose parameters are wrong fails alone, with INVALID_ARGUMENT, and so does one whose
image the session fails on; the others in its batch are answered.
"""

import importlib
from collections import defaultdict

import triton_python_backend_utils as pb_utils
from image_preprocess import TritonPythonModel as Preprocess
from yolo_seg_postprocess import TritonPythonModel as Postprocess

from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE, IMAGE_SIZE
from segops import image_batch
from segops.triton_params import config_parameters

NETWORK_MODULES = ("onnx_model", "openvino_model")  # the first is the default


class TritonPythonModel:
    def initialize(self, args):
        module = config_parameters(args["model_config"]).get(ConfigKeys.NETWORK_MODULE, NETWORK_MODULES[0])
        if module not in NETWORK_MODULES:
            raise ValueError(f"{ConfigKeys.NETWORK_MODULE} {module!r}: one of {', '.join(NETWORK_MODULES)}")
        Network = importlib.import_module(module).TritonPythonModel
        self.pre, self.network, self.post = Preprocess(), Network(), Postprocess()
        for part in (self.pre, self.network, self.post):
            part.initialize(args)  # each reads its own keys of the merged parameters

    def execute(self, requests):
        responses = [None] * len(requests)
        prepared = {}  # request index → (inputs, sizes, options) of the requests that got this far
        for i, request in enumerate(requests):
            try:
                options = self.post.options(request)
                encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
                inputs, sizes = image_batch.prepare_items(
                    image_batch.encoded_items(encoded), self.pre.spec, self.pre.max_pixels
                )
            except ValueError as exc:  # a wrong parameter, or a file that does not decode (BadItem)
                responses[i] = _error(str(exc), pb_utils.TritonError.INVALID_ARG)
            except Exception as exc:
                responses[i] = _error(f"preprocess failed: {type(exc).__name__}: {exc}")
            else:
                prepared[i] = (inputs, sizes, options)
        outputs = self._run_by_shape(prepared)
        for i, (inputs, sizes, options) in prepared.items():
            failed = next((o for o in outputs[i] if isinstance(o, Exception)), None)
            if failed is not None:
                responses[i] = _error(f"model failed: {type(failed).__name__}: {failed}")
                continue
            try:
                per_image = [
                    self.post.image(pred, protos, size, options, x.shape[-2:])
                    for (pred, protos), size, x in zip(outputs[i], sizes, inputs)
                ]
            except Exception as exc:
                responses[i] = _error(f"postprocess failed: {type(exc).__name__}: {exc}")
                continue
            responses[i] = pb_utils.InferenceResponse(
                output_tensors=[*self.post.pack(per_image), pb_utils.Tensor(IMAGE_SIZE.name, sizes)]
            )
        return responses

    def _run_by_shape(self, prepared):
        """Request index → per image, its raw outputs (output0, output1) or the Exception the
        session raised on it: one session call per input shape over every request's images."""
        feed = self.network.input_names[0]
        by_shape = defaultdict(list)  # input shape → (request index, image index)
        for i, (inputs, _, _) in prepared.items():
            for j, x in enumerate(inputs):
                by_shape[x.shape].append((i, j))
        outputs = {i: [None] * len(inputs) for i, (inputs, _, _) in prepared.items()}
        for members in by_shape.values():
            feeds = [{feed: prepared[i][0][j][None]} for i, j in members]
            for (i, j), out in zip(members, self.network.run_batches(feeds)):
                outputs[i][j] = out if isinstance(out, Exception) else (out[0][0], out[1][0])
        return outputs


def _error(message, code=None):
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(error=error)
