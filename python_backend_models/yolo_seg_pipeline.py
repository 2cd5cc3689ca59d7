"""Triton Python-backend model: the python-onnx runtime's whole YOLOv8-seg path in one process.

Encoded files → letterboxed input (image_preprocess.py) → the onnxruntime session on ``model.onnx``
(onnx_model.py) → detections with RLE masks (yolo_seg_postprocess.py): the same code as the
three-model ensemble, whose modules sit beside this file, without its two hops. Through the
ensemble, each image's 640×640 float input (4.9 MB) and the network's raw outputs (7.2 MB) are
copied between Python-backend processes by the server; here they stay in this process's memory.

Inputs and outputs are the ensemble's (``IMAGE`` → boxes, scores, classes, masks, num_detections,
image_size), and so are the request parameters (conf, iou, max_det). Requests gathered by dynamic
batching run as one session call; a request whose file does not decode or whose parameters are
wrong fails alone, with INVALID_ARGUMENT, and the others in its batch are answered.
"""

import triton_python_backend_utils as pb_utils
from image_preprocess import TritonPythonModel as Preprocess
from onnx_model import TritonPythonModel as Network
from yolo_seg_postprocess import TritonPythonModel as Postprocess

from segcontract.tasks import IMAGE, IMAGE_SIZE
from segops import image_batch


class TritonPythonModel:
    def initialize(self, args):
        self.pre, self.network, self.post = Preprocess(), Network(), Postprocess()
        for part in (self.pre, self.network, self.post):
            part.initialize(args)  # each reads its own keys of the merged parameters

    def execute(self, requests):
        responses = [None] * len(requests)
        prepared = []  # (index, inputs, sizes, options) of the requests that got this far
        for i, request in enumerate(requests):
            try:
                options = self.post.options(request)
                encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
                inputs, sizes = image_batch.prepare_batch(
                    image_batch.encoded_items(encoded), self.pre.spec, self.pre.max_pixels
                )
            except ValueError as exc:  # a wrong parameter, or a file that does not decode (BadItem)
                responses[i] = _error(str(exc), pb_utils.TritonError.INVALID_ARG)
            except Exception as exc:
                responses[i] = _error(f"preprocess failed: {type(exc).__name__}: {exc}")
            else:
                prepared.append((i, inputs, sizes, options))
        feed = self.network.input_names[0]
        outputs_each = self.network.run_batches([{feed: p[1]} for p in prepared])
        for (i, _, sizes, options), outputs in zip(prepared, outputs_each):
            if isinstance(outputs, Exception):
                responses[i] = _error(f"model failed: {type(outputs).__name__}: {outputs}")
                continue
            try:
                tensors = self.post.tensors(*outputs, sizes, options)
            except Exception as exc:
                responses[i] = _error(f"postprocess failed: {type(exc).__name__}: {exc}")
                continue
            responses[i] = pb_utils.InferenceResponse(
                output_tensors=[*tensors, pb_utils.Tensor(IMAGE_SIZE.name, sizes)]
            )
        return responses


def _error(message, code=None):
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(error=error)
