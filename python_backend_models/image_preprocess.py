"""Triton Python-backend model: encoded image files → model input, for every family.

Input ``IMAGE`` (TYPE_STRING, one encoded file per batch item). Outputs the model input (named by
the ``output_name`` parameter; resize mode, normalisation and layout from the input spec of the
model's record, see segcontract/model_metadata.py and segops/resize.py) and ``image_size``
(original height, width). A file that does not decode fails
its request with INVALID_ARGUMENT and a readable message; other requests in the batch are unaffected.
So does a file whose header claims more than the record's ``max_pixels`` (build-repo --max-pixels):
it is refused before decoding, so no request makes this process decode more pixels than that.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE, IMAGE_SIZE
from segops.image_header import limit_opencv_pixels
from segops.triton_params import config_metadata


class TritonPythonModel:
    def initialize(self, args):
        metadata, params = config_metadata(args["model_config"])
        self.max_pixels = metadata.max_pixels
        # OpenCV reads its own pixel limit (for formats segops cannot size) once, when it loads
        limit_opencv_pixels(self.max_pixels)
        import cv2

        from segops import decode, resize

        cv2.setNumThreads(1)  # parallelism comes from Triton (requests, instances), not OpenCV
        self.decode, self.resize = decode, resize
        self.spec = metadata.input
        self.output_name = params.get(ConfigKeys.OUTPUT_NAME, "images")

    def execute(self, requests):
        return [self._guarded(request) for request in requests]

    def _guarded(self, request):
        """A failure stays in its own request: the others batched with it still get answers."""
        try:
            return self._one(request)
        except Exception as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"preprocess failed: {type(exc).__name__}: {exc}")
            )

    def _one(self, request):
        encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
        items = encoded.reshape(encoded.shape[0], -1)[:, 0]
        inputs = np.empty((len(items), *self.spec.shape), dtype=np.float32)
        sizes = np.empty((len(items), 2), dtype=np.int32)
        for i, item in enumerate(items):
            try:
                image = self.decode.decode_image(item, self.max_pixels)
            except self.decode.ImageDecodeError as exc:
                where = f"batch item {i}: " if len(items) > 1 else ""
                return pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"{where}{exc}", pb_utils.TritonError.INVALID_ARG)
                )
            inputs[i] = self.resize.prepare(image, self.spec)
            sizes[i] = image.shape[:2]
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(self.output_name, inputs),
                pb_utils.Tensor(IMAGE_SIZE.name, sizes),
            ]
        )
