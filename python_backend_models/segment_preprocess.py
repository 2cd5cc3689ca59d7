"""Triton Python-backend model: one segment of an encoded image → the classifier's input.

Inputs ``IMAGE`` (TYPE_STRING, one encoded file per batch item), ``segment_box`` (float32 [4],
xyxy in the original image's pixels) and ``segment_mask`` (TYPE_STRING [1]: the segment's mask as
COCO compressed RLE counts at the image's size; an empty string keeps the whole box). The image
is decoded as image_preprocess.py decodes it (segops.image_batch: segops.decode, the record's
``max_pixels`` refused before decoding), cropped by :func:`segops.segment_crop.crop_segment` (the
box grown by the record's ``extra["segment_margin"]``, what is outside the mask filled with the
normalisation mean: the same function seg-train classify crops with) and prepared by
:func:`segops.resize.prepare`.
Outputs the model input (named by the ``output_name`` parameter) and ``image_size`` (the original
height, width). A bad file, box or mask fails its own request with INVALID_ARGUMENT.
"""

import math

import triton_python_backend_utils as pb_utils

from segcontract.checkpoint_formats import SEGMENT_MARGIN, SEGMENT_MARGIN_KEY
from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import IMAGE, IMAGE_SIZE, SEGMENT_BOX, SEGMENT_MASK
from segops import image_batch


class _BadSegment(image_batch.BadItem):
    """A box or mask that does not describe a segment of its image."""


class TritonPythonModel:
    def initialize(self, args):
        metadata, params = image_batch.start(args["model_config"])  # before anything loads cv2
        from segops import resize, segment_crop

        self.resize, self.segment_crop = resize, segment_crop
        self.max_pixels = metadata.max_pixels
        self.spec = metadata.input
        self.margin = float(metadata.extra.get(SEGMENT_MARGIN_KEY, SEGMENT_MARGIN))
        self.output_name = params.get(ConfigKeys.OUTPUT_NAME, "input")

    def execute(self, requests):
        return image_batch.guarded_responses(pb_utils, requests, self._one, "segment preprocess")

    def _one(self, request):
        encoded = pb_utils.get_input_tensor_by_name(request, IMAGE.name).as_numpy()
        boxes = pb_utils.get_input_tensor_by_name(request, SEGMENT_BOX.name).as_numpy()
        masks = pb_utils.get_input_tensor_by_name(request, SEGMENT_MASK.name).as_numpy()
        items = image_batch.encoded_items(encoded)
        boxes = boxes.reshape(len(items), -1)
        masks = masks.reshape(len(items), -1)[:, 0]

        def crop_and_prepare(i, image):
            box, mask = _box(boxes[i]), _mask(masks[i], image.shape[:2])
            crop = self.segment_crop.crop_segment(image, box, mask, self.margin, self.spec.mean)
            return self.resize.prepare(crop, self.spec)

        inputs, sizes = image_batch.prepare_batch(items, self.spec, self.max_pixels, crop_and_prepare)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(self.output_name, inputs),
                pb_utils.Tensor(IMAGE_SIZE.name, sizes),
            ]
        )


def _box(values):
    box = [float(v) for v in values]
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise _BadSegment(f"{SEGMENT_BOX.name} must be 4 finite numbers (x1, y1, x2, y2), not {box}")
    if box[2] < box[0] or box[3] < box[1]:
        raise _BadSegment(f"{SEGMENT_BOX.name} {box} is not xyxy (x2 < x1 or y2 < y1)")
    return tuple(box)


def _mask(counts, size):
    """The RLE counts, or None for an empty string (the whole box), checked against the image's
    size: pycocotools decodes counts of a smaller image into a larger one without complaint."""
    counts = counts if isinstance(counts, bytes) else bytes(counts)
    if not counts:
        return None
    height, width = size
    from segops.rle import covered_pixels, decode

    try:
        pixels = covered_pixels(counts)
    except ValueError as exc:
        raise _BadSegment(f"{SEGMENT_MASK.name} is {exc}") from None
    if pixels != height * width:
        raise _BadSegment(
            f"{SEGMENT_MASK.name} covers {pixels} pixels, not the image's {height}x{width}: "
            "send the RLE of a mask at the image's size"
        )
    return decode(counts, height, width)
