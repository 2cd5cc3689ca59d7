"""torch → ONNX with a dynamic batch axis, and any other dynamic axes asked for (TorchScript
exporter: stable names, no onnxscript)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

DEFAULT_OPSET = 17  # onnxruntime ≥ 1.14, TensorRT ≥ 8.6, every Triton since 23.xx


def export_onnx(
    module: torch.nn.Module,
    sample: torch.Tensor,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int = DEFAULT_OPSET,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
) -> Path:
    """``dynamic_axes``: per tensor, axes besides the batch that vary, with their names."""
    dynamic = {
        name: {0: "batch", **(dynamic_axes or {}).get(name, {})} for name in (*input_names, *output_names)
    }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        torch.onnx.export(
            module,
            sample,
            str(path),
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )
    return path
