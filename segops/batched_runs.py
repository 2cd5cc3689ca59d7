"""One network call over the requests dynamic batching gathered, shared by the Python-backend
models that run a network (onnxruntime's ``onnx_model.py``, OpenVINO's ``openvino_model.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Feed = dict[str, np.ndarray]  # input name → a batch
Run = Callable[[Feed], Sequence[np.ndarray]]  # a feed → the outputs, in the model's output order


def run_batches(run: Run, feeds: Sequence[Feed], input_names: Sequence[str]) -> list:
    """The outputs of each of ``feeds`` from one ``run`` over them all, concatenated along the
    batch; when that fails, each alone, so that a failure is its own (an Exception in its place)."""
    if not feeds:
        return []
    try:  # feeds of different shapes do not concatenate: then each runs alone too
        batch = {
            name: np.concatenate([f[name] for f in feeds]) if len(feeds) > 1 else feeds[0][name]
            for name in input_names
        }
        outputs = run(batch)
    except Exception:
        return [_alone(run, feed) for feed in feeds]
    split, start = [], 0
    for feed in feeds:
        n = feed[input_names[0]].shape[0]
        split.append([out[start : start + n] for out in outputs])
        start += n
    return split


def _alone(run: Run, feed: Feed):
    try:
        return list(run(feed))
    except Exception as exc:
        return exc
