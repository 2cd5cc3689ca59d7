"""The network a new `seg-train classify` run starts from: timm's pretrained weights where they can
be had, random ones with a warning otherwise. Only an unknown --arch is an error; no network
trouble stops a run, and an unreachable hub costs seconds, not the hub client's minute of retries."""

from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from urllib.parse import urlsplit

import torch

from model_checkpoints.classifier import build_network
from segcontract.checkpoint_formats import ClassifierModelInfo
from training.exception_text import first_line

log = logging.getLogger("seg-train")

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def new_network(info: ClassifierModelInfo, pretrained: bool) -> torch.nn.Module:
    """Pretrained weights where timm can get them; random ones, with a warning, otherwise. An unknown
    architecture is a CheckpointError."""
    network = build_network(info)
    if not pretrained:
        return network
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        log.warning("offline (HF_HUB_OFFLINE=1): %s starts from random weights", info.arch)
        return network
    unreachable = _hub_unreachable()
    if unreachable:
        # the hub client retries for about a minute before giving up; its cache may still hold them
        _hub_offline()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_network(info, pretrained=True)
    except Exception as exc:  # offline, no such weights, a hub error: none is fatal
        reason = unreachable or first_line(exc)
        log.warning("no pretrained weights for %s (%s): starting from random weights", info.arch, reason)
        return network


def _hub_unreachable(seconds: float = 5.0) -> str | None:
    """Why the Hugging Face hub (where timm's weights are) cannot be reached, or None. Skipped
    behind a proxy, which only the hub client knows how to use."""
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return None
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as exc:
        return f"cannot reach {host}: {exc.strerror or type(exc).__name__}"
    return None


def _hub_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # read when huggingface_hub is imported
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported (an earlier run in this process)
        constants.HF_HUB_OFFLINE = True
