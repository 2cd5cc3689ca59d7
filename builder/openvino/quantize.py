"""INT8 by NNCF's post-training quantization, calibrated on the user's images."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import openvino as ov

METHOD = "OpenVINO NNCF post-training quantization (mixed preset)"


def quantize_int8(model: ov.Model, calibration: Sequence[np.ndarray], float_scope: Sequence[str]) -> ov.Model:
    """``model`` with INT8 weights and activations, its ranges taken from ``calibration`` (prepared
    inputs). The nodes whose names match ``float_scope`` (regular expressions; a family's
    box-decoding arithmetic, say) stay in floating point. Mixed preset: symmetric weights,
    asymmetric activations, as SiLU's outputs are not centred on zero."""
    import nncf  # slow to import: only a build with --int8 pays for it

    nncf.set_log_level(logging.WARNING)  # not a line per node it leaves alone

    ignored = nncf.IgnoredScope(patterns=list(float_scope), validate=False) if float_scope else None
    return nncf.quantize(
        model,
        nncf.Dataset(list(calibration)),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calibration),
        ignored_scope=ignored,
    )
