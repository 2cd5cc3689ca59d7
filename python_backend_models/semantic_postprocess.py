"""Triton Python-backend model: per-pixel class scores → class-index mask at the original size.

Inputs the network's ``logits`` (C×h×w, or h×w×C for NHWC models) and ``image_size``. Outputs
``mask`` (UINT8, or UINT16 beyond 256 classes), padded to the largest image of the batch, and
``image_size`` tells the client what to crop.
"""

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from segcontract.masks import index_dtype
from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE_SIZE, SEMANTIC_MASK_NAME
from segops.semantic import class_index_mask
from segops.triton_params import config_metadata


class TritonPythonModel:
    def initialize(self, args):
        cv2.setNumThreads(1)  # parallelism comes from Triton (requests, instances), not OpenCV
        metadata, params = config_metadata(args["model_config"])
        self.layout = params.get(ConfigKeys.LOGITS_LAYOUT, "CHW")  # this model's own: the network's
        self.logits_name = params.get(ConfigKeys.LOGITS_NAME, "logits")
        self.dtype = np.dtype(index_dtype(metadata.num_classes - 1))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except Exception as exc:  # a failure stays in its own request
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"postprocess failed: {type(exc).__name__}: {exc}")
                    )
                )
        return responses

    def _one(self, request):
        logits = pb_utils.get_input_tensor_by_name(request, self.logits_name).as_numpy()
        sizes = pb_utils.get_input_tensor_by_name(request, IMAGE_SIZE.name).as_numpy()
        h, w = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        masks = np.zeros((len(logits), h, w), self.dtype)
        for i, (scores, size) in enumerate(zip(logits, sizes)):
            masks[i, : size[0], : size[1]] = class_index_mask(
                scores, (int(size[0]), int(size[1])), self.layout
            )
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(SEMANTIC_MASK_NAME, masks)])
