"""What a `seg-train semantic` run records of each epoch: one validation pass (mIoU, IoU per class,
the validation loss, a few predictions to look at), ``metrics.csv`` in the run's folder, and,
unless --no-tensorboard, TensorBoard event files in ``<run>/tensorboard``: the losses, the mIoU and
the IoU of each class present, the learning rate, and the first validation images beside their
true and predicted masks."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from segcontract.checkpoint_formats import SemanticModelInfo
from training.semantic_data import IGNORE_INDEX
from training.semantic_metrics import confusion, mean_iou

PREVIEW_IMAGES = 4  # validation images shown with their masks, each epoch
METRICS_FIELDS = ("epoch", "train_loss", "val_loss", "val_mIoU", "lr")


@dataclass
class Validation:
    """One pass over the validation set."""

    miou: float
    per_class: list[float]  # NaN for a class neither in the masks nor predicted
    loss: float  # mean cross-entropy over the labelled pixels (NaN without any)
    images: torch.Tensor = field(repr=False)  # the first PREVIEW_IMAGES, normalised NCHW
    masks: torch.Tensor = field(repr=False)  # their true masks (NHW)
    predicted: torch.Tensor = field(repr=False)  # their predicted masks (NHW)


@torch.no_grad()
def validate(
    model: torch.nn.Module, loader: DataLoader, num_classes: int, device, keep: int = PREVIEW_IMAGES
) -> Validation:
    """The mIoU (:mod:`training.semantic_metrics`), the loss, and the first ``keep`` predictions."""
    model.eval()
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)
    loss_sum, pixels = 0.0, 0
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum")
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for images, masks in loader:
        logits = model(images.to(device))
        pred = logits.argmax(1).cpu()
        matrix += confusion(pred.flatten(), masks.flatten(), num_classes)
        loss_sum += float(loss_fn(logits, masks.to(device)))
        pixels += int((masks != IGNORE_INDEX).sum())
        if sum(len(k[0]) for k in kept) < keep:
            kept.append((images, masks, pred))
    miou, per_class = mean_iou(matrix)
    if kept:
        images, masks, pred = (torch.cat(parts)[:keep] for parts in zip(*kept))
    else:
        images, masks, pred = torch.empty(0, 3, 1, 1), torch.empty(0, 1, 1), torch.empty(0, 1, 1)
    return Validation(miou, per_class, loss_sum / pixels if pixels else float("nan"), images, masks, pred)


def preview(validation: Validation, info: SemanticModelInfo) -> np.ndarray:
    """NHWC uint8 RGB: each kept image, its true mask and its predicted mask side by side, in the
    classes' colours (ignored pixels grey)."""
    palette = np.vstack([np.asarray(info.colors, np.uint8), [[128, 128, 128]]])
    mean = np.asarray(info.mean, np.float32)[:, None, None]
    std = np.asarray(info.std, np.float32)[:, None, None]

    def colour(mask: torch.Tensor) -> np.ndarray:
        m = mask.numpy().astype(np.int64)
        return palette[np.where((m >= 0) & (m < len(info.colors)), m, len(info.colors))]

    rows = []
    for image, mask, pred in zip(validation.images, validation.masks, validation.predicted):
        rgb = np.clip((image.numpy() * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        rows.append(np.hstack([rgb, colour(mask), colour(pred)]))
    return np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)


class EpochRecord:
    """``metrics.csv`` (appended to when a run is resumed) and, with ``tensorboard``, a
    SummaryWriter in ``run_dir/tensorboard``; the step of every scalar is the epoch (from 1).

    ``resumed_at``: the epoch of the checkpoint a resumed run starts from. Whatever an earlier,
    killed attempt recorded after it goes: its rows of metrics.csv, and (a purge step TensorBoard
    honours) its events, so each epoch's curve point is the resumed run's, once."""

    def __init__(
        self, run_dir: Path, info: SemanticModelInfo, tensorboard: bool = True, resumed_at: int = 0
    ) -> None:
        self.info = info
        self.csv_path = Path(run_dir) / "metrics.csv"
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_at and self.csv_path.is_file():
            _drop_rows_after(self.csv_path, resumed_at)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = {"purge_step": resumed_at + 1} if resumed_at else {}
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), **purge)

    def epoch(self, epoch: int, train_loss: float, validation: Validation, lr: float) -> None:
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": validation.loss}
        row |= {"val_mIoU": validation.miou, "lr": lr}
        new = not self.csv_path.is_file()
        with open(self.csv_path, "a", newline="") as f:
            out = csv.DictWriter(f, METRICS_FIELDS)
            if new:
                out.writeheader()
            out.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", train_loss, epoch)
        self.writer.add_scalar("val/loss", validation.loss, epoch)
        self.writer.add_scalar("val/mIoU", validation.miou, epoch)
        self.writer.add_scalar("lr", lr, epoch)
        for name, iou in zip(self.info.class_names, validation.per_class):
            if iou == iou:  # not NaN: the class is present
                self.writer.add_scalar(f"val/IoU/{name}", iou, epoch)
        shown = preview(validation, self.info)
        if len(shown):
            self.writer.add_images("val/predictions", shown, epoch, dataformats="NHWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _drop_rows_after(csv_path: Path, epoch: int) -> None:
    """metrics.csv without its rows past ``epoch`` (written by an attempt killed after saving it)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [row for row in rows if row.get("epoch", "").isdigit() and int(row["epoch"]) <= epoch]
    if len(kept) == len(rows):
        return
    with open(csv_path, "w", newline="") as f:
        out = csv.DictWriter(f, METRICS_FIELDS)
        out.writeheader()
        out.writerows(kept)
