"""Triton Python-backend model: encoded image files → model input, for every family.

Input ``IMAGE`` (TYPE_STRING, one encoded file per batch item). Outputs the model input (named by
the ``output_name`` parameter; resize mode, normalisation and layout from the input spec of the
model's record, see segcontract/model_metadata.py and segops/resize.py) and ``image_size``
(original height, width). A file that does not decode fails
its request with INVALID_ARGUMENT and a readable message; other requests in the batch are unaffected.
So does a file whose header claims more than the record's ``max_pixels`` (build-repo --max-pixels):
it is refused before decoding, so no request makes this process decode more pixels than that.
"""

import triton_python_backend_utils as pb_utils

from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE, IMAGE_SIZE
from segops import image_batch


class TritonPythonModel:
    def initialize(self, args):
        metadata, params = image_batch.start(args["model_config"])  # before anything loads cv2
        self.max_pixels = metadata.max_pixels
        self.spec = metadata.input
        self.output_name = params.get(ConfigKeys.OUTPUT_NAME, "images")

    def execute(self, requests):
        return image_batch.guarded_responses(pb_utils, requests, self._one, "preprocess")

    def _one(self, request):
        encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
        items = image_batch.encoded_items(encoded)
        inputs, sizes = image_batch.prepare_batch(items, self.spec, self.max_pixels)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(self.output_name, inputs),
                pb_utils.Tensor(IMAGE_SIZE.name, sizes),
            ]
        )
