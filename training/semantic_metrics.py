"""How well a semantic model segments the validation set: a confusion matrix over its pixels
(ignored pixels left out) and the intersection over union of each class."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from training.semantic_data import IGNORE_INDEX


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[true class][predicted class]`` pixel counts."""
    keep = target != IGNORE_INDEX
    idx = target[keep] * num_classes + pred[keep]
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(matrix: torch.Tensor) -> tuple[float, list[float]]:
    """Mean over the classes present in the ground truth or the predictions."""
    m = matrix.double()
    inter = m.diag()
    union = m.sum(0) + m.sum(1) - inter
    ious = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))
    present = ~torch.isnan(ious)
    return (float(ious[present].mean()) if present.any() else 0.0), ious.tolist()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: DataLoader, num_classes: int, device
) -> tuple[float, list[float]]:
    """(mIoU, IoU per class: NaN for a class neither in the masks nor predicted) over ``loader``."""
    model.eval()
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for images, masks in loader:
        pred = model(images.to(device)).argmax(1).cpu()
        matrix += confusion(pred.flatten(), masks.flatten(), num_classes)
    return mean_iou(matrix)
