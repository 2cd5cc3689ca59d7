"""The LightningModule `seg-train classify` trains: a timm network kept as ``self.model`` (so the
checkpoint's ``state_dict`` keys start with ``model.``, as :mod:`model_checkpoints.classifier`
reads them) and hyper-parameters that make the ``.ckpt`` self-describing (``segstack.classifier/1``:
the format, the :class:`ClassifierModelInfo` record, and the plain training arguments)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from model_checkpoints.classifier import build_network, info_record
from segcontract.checkpoint_formats import CLASSIFIER_FORMAT, ClassifierModelInfo

MIN_LR_FACTOR = 0.01  # the cosine schedule ends at this share of --lr


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of ``self.model`` with AdamW and a cosine schedule over the trainer's
    epochs; logs train_loss/train_acc and val_loss/val_acc (val_acc picks the best checkpoint).

    ``info`` is a :class:`ClassifierModelInfo` or its record (as ``load_from_checkpoint`` passes
    it back); ``network`` is a ready network (pretrained weights), else a random one is built.
    Every other keyword is a plain training argument stored in the hyper-parameters.
    """

    def __init__(
        self,
        info: ClassifierModelInfo | dict[str, Any],
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        format: str = CLASSIFIER_FORMAT,
        network: nn.Module | None = None,
        **training_args: Any,
    ) -> None:
        super().__init__()
        if format != CLASSIFIER_FORMAT:
            raise ValueError(f"checkpoint format {format!r}, not {CLASSIFIER_FORMAT!r}")
        self.info = info if isinstance(info, ClassifierModelInfo) else ClassifierModelInfo(**info)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.save_hyperparameters(
            {
                "format": CLASSIFIER_FORMAT,
                "info": info_record(self.info),
                "lr": self.lr,
                "weight_decay": self.weight_decay,
                **training_args,
            }
        )
        self.model = network if network is not None else build_network(self.info)
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, one per class."""
        return self.model(x)

    def predict_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        n = len(labels)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{stage}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        def factor(epoch: int) -> float:
            # read at each step, not frozen in the scheduler's state: a resumed run with more
            # --epochs stretches the schedule to its new end
            total = max(int(self.trainer.max_epochs or 1), 1)
            return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(epoch / total, 1)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


class ProbabilityNetwork(nn.Module):
    """The network followed by softmax: what the TorchScript and ONNX exports compute."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x), dim=1)
