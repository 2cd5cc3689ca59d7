"""What every image preprocess model of the Python backend does with a request's batch of encoded
files (python_backend_models/image_preprocess.py, segment_preprocess.py): its start (the record read
from config.pbtxt, OpenCV's pixel limit set before cv2 loads) and the loop that decodes each file,
turns it into the model input and keeps its original size.

No OpenCV import at module level: :func:`start` sets OpenCV's limit, which it reads when it loads.
No Triton import either: :func:`guarded_responses` takes the backend's ``pb_utils`` from the model
and turns a :class:`BadItem` into an INVALID_ARGUMENT response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segcontract.errors import SegstackError
from segcontract.model_metadata import InputSpec, ModelMetadata

from .image_header import limit_opencv_pixels
from .triton_params import config_metadata


class BadItem(SegstackError, ValueError):
    """A batch item the model refuses (a file that does not decode, a box outside its image...):
    the request's fault, answered with INVALID_ARGUMENT."""


def start(model_config_json: str) -> tuple[ModelMetadata, dict[str, str]]:
    """The model's record and its config parameters, read in ``initialize``; OpenCV limited to the
    record's ``max_pixels`` before it loads, and single-threaded (parallelism comes from Triton:
    requests, instances)."""
    metadata, params = config_metadata(model_config_json)
    limit_opencv_pixels(metadata.max_pixels)
    import cv2

    cv2.setNumThreads(1)
    return metadata, params


def guarded_responses(
    pb_utils: Any, requests: Sequence[Any], answer: Callable[[Any], Any], what: str
) -> list:
    """``answer(request)`` for each request, a failure kept to its own request (the others batched
    with it still get answers): a :class:`BadItem` as INVALID_ARGUMENT, anything else as an internal
    error naming ``what`` failed. ``pb_utils`` is the Python backend's module, which only the
    running model can import."""
    responses = []
    for request in requests:
        try:
            responses.append(answer(request))
        except BadItem as exc:
            error = pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            responses.append(pb_utils.InferenceResponse(error=error))
        except Exception as exc:
            error = pb_utils.TritonError(f"{what} failed: {type(exc).__name__}: {exc}")
            responses.append(pb_utils.InferenceResponse(error=error))
    return responses


def encoded_items(tensor: np.ndarray) -> np.ndarray:
    """The IMAGE tensor's encoded files, one per batch item ([batch] or [batch, 1])."""
    return tensor.reshape(tensor.shape[0], -1)[:, 0]


def prepare_batch(
    items: Sequence[Any],
    spec: InputSpec,
    max_pixels: int,
    prepare: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs float32 [n, *spec.shape], original sizes int32 [n, 2] as height, width): the
    inputs of :func:`prepare_items` in one array, for a spec whose inputs have one shape."""
    if spec.stride is not None:
        raise ValueError("inputs padded to a stride differ in shape: use prepare_items")
    inputs, sizes = prepare_items(items, spec, max_pixels, prepare)
    if not inputs:
        return np.empty((0, *spec.shape), np.float32), sizes
    return np.stack(inputs).astype(np.float32, copy=False), sizes


def prepare_items(
    items: Sequence[Any],
    spec: InputSpec,
    max_pixels: int,
    prepare: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """(each item's model input, float32, original sizes int32 [n, 2] as height, width).

    Each file is decoded by :func:`segops.decode.decode_image` (a header over ``max_pixels`` refused
    before decoding); ``prepare(i, image)`` makes item ``i``'s model input, by default
    :func:`segops.resize.prepare`. A file that does not decode, or a :class:`BadItem` from
    ``prepare``, raises one :class:`BadItem` that names the item when the batch holds several.
    """
    from . import decode, resize

    inputs = []
    sizes = np.empty((len(items), 2), dtype=np.int32)
    for i, item in enumerate(items):
        try:
            image = decode.decode_image(item, max_pixels)
            inputs.append(prepare(i, image) if prepare is not None else resize.prepare(image, spec))
        except (decode.ImageDecodeError, BadItem) as exc:
            where = f"batch item {i}: " if len(items) > 1 else ""
            raise BadItem(f"{where}{exc}") from None
        sizes[i] = image.shape[:2]
    return inputs, sizes
