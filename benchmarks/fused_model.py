"""A Triton Python-backend model that does in one process what the python-onnx ensemble does in
three: decode and letterbox the files, run the onnxruntime session, post-process (NMS, masks,
RLE). benchmarks/fused.py copies it, with the three models it reuses, into one model folder to
measure it against the ensemble; it is not part of what build-repo writes.
"""

import triton_python_backend_utils as pb_utils
from image_preprocess import TritonPythonModel as Preprocess
from onnx_model import TritonPythonModel as Network
from yolo_seg_postprocess import TritonPythonModel as Postprocess

from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE, IMAGE_SIZE
from segops import image_batch
from segops.triton_params import request_overrides


class TritonPythonModel:
    def initialize(self, args):
        self.pre, self.network, self.post = Preprocess(), Network(), Postprocess()
        for part in (self.pre, self.network, self.post):
            part.initialize(args)  # each reads its own keys of the merged parameters

    def execute(self, requests):
        return image_batch.guarded_responses(pb_utils, requests, self._one, "fused model")

    def _one(self, request):
        try:
            options = request_overrides(
                request.parameters(),
                self.post.defaults,
                {ConfigKeys.MAX_DET: self.post.defaults[ConfigKeys.MAX_DET]},
            )
        except ValueError as exc:
            raise image_batch.BadItem(str(exc)) from None
        encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
        inputs, sizes = image_batch.prepare_batch(
            image_batch.encoded_items(encoded), self.pre.spec, self.pre.max_pixels
        )
        preds, protos = self.network.session.run(
            self.network.output_names, {self.network.input_names[0]: inputs}
        )
        answer = self.post.answer(preds, protos, sizes, options)
        return pb_utils.InferenceResponse(
            output_tensors=[*answer.output_tensors(), pb_utils.Tensor(IMAGE_SIZE.name, sizes)]
        )
