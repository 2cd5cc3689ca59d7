"""Triton Python-backend model: raw YOLOv8-seg outputs → detections with full-resolution masks.

Inputs ``output0`` (4 + classes + 32, anchors), ``output1`` (32, H/4, W/4) and ``image_size``.
Outputs per image, padded to the longest in the batch: ``boxes`` (K×4 xyxy, original pixels),
``scores``, ``classes``, ``masks`` (COCO compressed RLE counts, one string per detection) and
``num_detections`` (names from segcontract/tasks.py). conf / iou / max_det default to the
thresholds of this model's record (segcontract/model_metadata.py) and can be
overridden per request (request parameters are forwarded through the ensemble); the configured
max_det is also a ceiling: a request asking for more gets at most that many.
"""

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import BOXES, CLASSES, IMAGE_SIZE, MASKS, NUM_DETECTIONS, SCORES
from segops import instances
from segops.triton_params import config_metadata, request_overrides


class TritonPythonModel:
    def initialize(self, args):
        cv2.setNumThreads(1)  # parallelism comes from Triton (requests, instances), not OpenCV
        metadata, _ = config_metadata(args["model_config"])
        if metadata.thresholds is None:
            raise ValueError("the model record has no thresholds (conf, iou, max_det)")
        self.input_hw = (metadata.input.height, metadata.input.width)
        self.num_classes = metadata.num_classes
        self.defaults = metadata.thresholds.to_dict()

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                options = self.options(request)
            except ValueError as exc:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
                    )
                )
                continue
            try:
                responses.append(self._one(request, options))
            except Exception as exc:
                responses.append(
                    pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"postprocess failed: {type(exc).__name__}: {exc}")
                    )
                )
        return responses

    def options(self, request):
        """conf / iou / max_det for this request: its parameters over the record's thresholds, the
        configured max_det a ceiling. ValueError naming a parameter that is wrong."""
        return request_overrides(
            request.parameters(), self.defaults, {ConfigKeys.MAX_DET: self.defaults[ConfigKeys.MAX_DET]}
        )

    def _one(self, request, options):
        preds = pb_utils.get_input_tensor_by_name(request, "output0").as_numpy()
        protos = pb_utils.get_input_tensor_by_name(request, "output1").as_numpy()
        sizes = pb_utils.get_input_tensor_by_name(request, IMAGE_SIZE.name).as_numpy()
        return self.answer(preds, protos, sizes, options)

    def answer(self, preds, protos, sizes, options):
        """The response for a batch of raw outputs and the images' original sizes."""
        return pb_utils.InferenceResponse(output_tensors=self.tensors(preds, protos, sizes, options))

    def tensors(self, preds, protos, sizes, options):
        """The output tensors for a batch of raw outputs and the images' original sizes."""
        return self.pack([self.image(p, m, s, options) for p, m, s in zip(preds, protos, sizes)])

    def pack(self, per_image):
        """The output tensors for images' (boxes, scores, classes, RLE masks), each from
        :meth:`image`, padded to the one with the most detections."""
        k = max((len(scores) for _, scores, _, _ in per_image), default=0)
        b = len(per_image)
        boxes = np.zeros((b, k, 4), np.float32)
        scores = np.zeros((b, k), np.float32)
        classes = np.full((b, k), -1, np.int32)
        masks = np.full((b, k), b"", dtype=object)
        counts = np.zeros((b, 1), np.int32)
        for i, (bx, sc, cl, rl) in enumerate(per_image):
            n = len(sc)
            boxes[i, :n], scores[i, :n], classes[i, :n], counts[i, 0] = bx, sc, cl, n
            masks[i, :n] = rl
        return [
            pb_utils.Tensor(BOXES.name, boxes),
            pb_utils.Tensor(SCORES.name, scores),
            pb_utils.Tensor(CLASSES.name, classes),
            pb_utils.Tensor(MASKS.name, masks),
            pb_utils.Tensor(NUM_DETECTIONS.name, counts),
        ]

    def image(self, pred, protos, size, options, input_hw=None):
        """One image's (boxes, scores, classes, RLE masks) from its raw outputs, its original
        ``size`` and the (height, width) of the input they came from (default: the record's)."""
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"image_size {size.tolist()} must be positive")
        return instances.detect(
            pred,
            protos,
            size,
            input_hw or self.input_hw,
            self.num_classes,
            options[ConfigKeys.CONF],
            options[ConfigKeys.IOU],
            options[ConfigKeys.MAX_DET],
        )
