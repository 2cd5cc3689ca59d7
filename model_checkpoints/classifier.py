"""Reading the checkpoint `seg-train classify` writes and `build-repo --model classifier` reads (its
contents: :mod:`segcontract.checkpoint_formats`, ``segstack.classifier/1``), and building its
network: a timm model whose head has one output per class (logits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from model_checkpoints.torch_files import first_line, load_weights_only
from segcontract.checkpoint_formats import CLASSIFIER_FORMAT, CheckpointError, ClassifierModelInfo

STATE_PREFIX = "model."  # the LightningModule keeps the network as ``self.model``


def build_network(info: ClassifierModelInfo, pretrained: bool = False) -> torch.nn.Module:
    """The timm network for ``info``; ``pretrained`` asks timm for its weights (a download)."""
    import timm

    try:
        return timm.create_model(info.arch, pretrained=pretrained, num_classes=info.num_classes)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot build timm model {info.arch!r}: {first_line(exc)}") from None


def info_record(info: ClassifierModelInfo) -> dict[str, Any]:
    """``info`` as the plain dict the checkpoint's hyper_parameters carry."""
    return {
        "arch": info.arch,
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "input_size": list(info.input_size),
        "mean": list(info.mean),
        "std": list(info.std),
        "resize": info.resize,
        "segment_margin": info.segment_margin,
    }


def read_checkpoint(path: Path, trust: bool = False) -> tuple[ClassifierModelInfo, dict[str, Any]]:
    """(model info, the whole payload). Loaded with ``weights_only=True``: nothing in it runs;
    ``trust`` (--trust-checkpoint): the full unpickler."""
    path = Path(path)
    payload = load_weights_only(path, "seg-train classify", trust)
    hparams = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if not isinstance(hparams, dict) or hparams.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(
            f"{path}: not a seg-train classify checkpoint (format {CLASSIFIER_FORMAT!r} expected)"
        )
    try:
        info = ClassifierModelInfo(**hparams["info"])
    except (TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: its classifier record is incomplete ({exc})") from None
    return info, payload


def load_network(path: Path, trust: bool = False) -> tuple[ClassifierModelInfo, torch.nn.Module]:
    """The checkpoint's network in eval mode, with its weights (``trust``: as for read_checkpoint)."""
    info, payload = read_checkpoint(path, trust)
    network = build_network(info)
    state = {
        k[len(STATE_PREFIX) :]: v
        for k, v in payload.get("state_dict", {}).items()
        if k.startswith(STATE_PREFIX)
    }
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit {info.arch} ({first})") from None
    return info, network.eval()
