"""What a `seg-train classify` run shows in TensorBoard beside Lightning's scalars: the first
validation images of each epoch with their predicted and true labels."""

from __future__ import annotations

from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from segcontract.checkpoint_formats import ClassifierModelInfo

PREVIEW_IMAGES = 4  # validation images shown each epoch
TILE = 128
GREEN, RED = (0, 160, 0), (200, 0, 0)  # RGB: predicted right, predicted wrong


def labelled_tiles(
    images: torch.Tensor, predicted: list[int], truth: list[int], info: ClassifierModelInfo
) -> np.ndarray:
    """NHWC uint8 RGB tiles of prepared (normalised NCHW) images, each captioned with its
    predicted class (green when right; red, with the true class, when wrong)."""
    mean = np.asarray(info.mean, np.float32)[:, None, None]
    std = np.asarray(info.std, np.float32)[:, None, None]
    tiles = []
    for x, pred, true in zip(images.numpy(), predicted, truth):
        rgb = np.clip((x * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        tile = cv2.resize(np.ascontiguousarray(rgb), (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        tile = cv2.copyMakeBorder(tile, 0, 36, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        right = pred == true
        name = info.class_names[pred][:18]
        cv2.putText(tile, name, (3, TILE + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, GREEN if right else RED, 1)
        if not right:
            caption = f"true: {info.class_names[true]}"[:20]
            cv2.putText(tile, caption, (3, TILE + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        tiles.append(tile)
    return np.stack(tiles) if tiles else np.zeros((0, TILE + 36, TILE, 3), np.uint8)


class ValidationPreview(L.Callback):
    """The first :data:`PREVIEW_IMAGES` validation images of each epoch, with their predicted
    labels, to the run's TensorBoard logger (``val/predictions``, at the step of the epoch's metrics);
    nothing without one (--no-tensorboard)."""

    def __init__(self, count: int = PREVIEW_IMAGES) -> None:
        self.count = count
        self.shown: tuple[torch.Tensor, list[int], list[int]] | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.shown = None

    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or trainer.sanity_checking or _board(trainer) is None:
            return
        images, labels = batch
        images, labels = images[: self.count], labels[: self.count]
        predicted = pl_module(images).argmax(1)
        self.shown = (images.detach().float().cpu(), predicted.tolist(), labels.tolist())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        board = _board(trainer)
        if board is None or self.shown is None or trainer.sanity_checking:
            return
        tiles = labelled_tiles(*self.shown, pl_module.info)
        # at the step of the epoch's other metrics (its last batch), not the next epoch's first
        step = max(trainer.global_step - 1, 0)
        board.experiment.add_images("val/predictions", tiles, step, dataformats="NHWC")
        self.shown = None


def _board(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
