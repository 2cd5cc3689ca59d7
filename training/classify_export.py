"""The trained classifier as the files beside its checkpoint: the network followed by a softmax,
traced to TorchScript and exported to ONNX (input ``input`` (N,3,H,W), output ``probabilities``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from segcontract.checkpoint_formats import ClassifierModelInfo
from training.classify_module import ProbabilityNetwork

ONNX_OPSET = 17


def export_torchscript(network: torch.nn.Module, info: ClassifierModelInfo, path: Path) -> Path:
    """``network`` + softmax, traced at the input size (the batch stays free)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = info.input_size
    module = ProbabilityNetwork(network).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, torch.zeros(1, 3, height, width), check_trace=False)
        traced.save(str(path))
    return path


def export_onnx(network: torch.nn.Module, info: ClassifierModelInfo, path: Path) -> Path:
    """``network`` + softmax as ONNX (TorchScript exporter, dynamic batch): input → probabilities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = info.input_size
    module = ProbabilityNetwork(network).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            torch.zeros(2, 3, height, width),
            str(path),
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
            do_constant_folding=True,
            dynamo=False,
        )
    return path
