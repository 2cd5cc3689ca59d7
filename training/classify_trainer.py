"""The Lightning side of a `seg-train classify` run: data loaders, the local loggers (TensorBoard,
CSV), the best and last checkpoints, one log line per epoch, the learning rate and a few predicted
validation images logged, the trainer and its fit."""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, Dataset

from training.classify_board import ValidationPreview

log = logging.getLogger("seg-train")


def _no_tips(record: logging.LogRecord) -> bool:
    """Lightning advertises its cloud logger on every run; this command's output stays about the run."""
    return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_tips)


class EpochReport(L.Callback):
    """One log line per epoch (the progress bar is only shown on a terminal)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        parts = [
            f"{key.replace('_', ' ')} {float(m[key]):.4f}"
            for key in ("train_loss", "train_acc", "val_loss", "val_acc")
            if key in m
        ]
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, trainer.max_epochs, ", ".join(parts))


def data_loaders(
    train_set: Dataset, val_set: Dataset, batch_size: int, workers: int
) -> tuple[DataLoader, DataLoader]:
    """Shuffled training batches (the last, partial one dropped when there is more than one batch)
    and validation batches in order."""
    loader_args: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) > batch_size, **loader_args)
    return train_loader, DataLoader(val_set, shuffle=False, **loader_args)


def local_loggers(run_dir: Path, tensorboard: bool = True, resumed_step: int = 0) -> list[Any]:
    """TensorBoard (``tensorboard/``; not with ``tensorboard=False``) and CSV (``csv_logs/``)
    loggers in the run's folder. ``resumed_step``: the global step of the checkpoint a resumed run
    starts from; TensorBoard then drops what an earlier, killed attempt logged from that step on
    (the epoch it did not finish), so each point of the curves is logged once."""
    _keep_earlier_metrics(run_dir / "csv_logs")
    purge = {"purge_step": resumed_step} if resumed_step else {}
    board = TensorBoardLogger(
        save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False, **purge
    )
    return [*([board] if tensorboard else []), CSVLogger(save_dir=str(run_dir), name="csv_logs", version="")]


def _keep_earlier_metrics(folder: Path) -> None:
    """A run resumed in its own folder: CSVLogger would overwrite metrics.csv, so the earlier one
    moves aside (metrics.1.csv, metrics.2.csv...)."""
    metrics = folder / "metrics.csv"
    if not metrics.is_file():
        return
    n = 1
    while (folder / f"metrics.{n}.csv").exists():
        n += 1
    metrics.rename(folder / f"metrics.{n}.csv")
    log.info("earlier metrics kept in %s", folder / f"metrics.{n}.csv")


@dataclass(frozen=True)
class RunCheckpoints:
    """``best.ckpt`` by val_acc and ``last.ckpt``. Two callbacks: since Lightning 2.6, save_last
    writes last.ckpt only in an epoch that also saved a best one, so "last" is its own
    un-monitored checkpoint, rewritten every epoch."""

    folder: Path
    best: ModelCheckpoint
    last: ModelCheckpoint

    @classmethod
    def in_folder(cls, folder: Path) -> RunCheckpoints:
        best = ModelCheckpoint(
            dirpath=str(folder),
            filename="best",
            monitor="val_acc",
            mode="max",
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        last = ModelCheckpoint(
            dirpath=str(folder),
            filename="last",
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        )
        return cls(folder, best, last)

    def paths(self) -> tuple[Path, Path]:
        """(best, last) as written; the last stands in for a best that was never saved."""
        last = self.folder / "last.ckpt"
        best = Path(self.best.best_model_path) if self.best.best_model_path else last
        return (best if best.is_file() else last), last

    def best_score(self) -> float | None:
        score = self.best.best_model_score
        return float(score) if score is not None else None


class EpochSeed(L.Callback):
    """Seeds every epoch from (seed, epoch) alone: its shuffle, augmentation and workers are then
    the same whether the run went through or was resumed from the epoch before (Lightning's
    checkpoints hold no random state).

    The seed must be in place before the epoch's data iterator exists: Lightning makes the first
    one of a fit before ``on_train_epoch_start``, so epoch 0 is seeded at ``setup``, the epoch a
    resumed run starts with when its checkpoint is loaded, and each next one when an epoch ends."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _seed(self, epoch: int) -> None:
        epoch_seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        L.seed_everything(epoch_seed, workers=True, verbose=False)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._seed(0)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._seed(int(checkpoint.get("epoch", -1)) + 1)  # saved as its epoch ended

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._seed(trainer.current_epoch + 1)


def make_trainer(
    epochs: int,
    accelerator: str,
    run_dir: Path,
    loggers: list[Any],
    checkpoints: RunCheckpoints,
    steps: int,
    seed: int = 0,
) -> L.Trainer:
    """One device, no sanity validation, a progress bar only on a terminal; ``steps``: training
    batches per epoch; ``seed``: each epoch's (:class:`EpochSeed`)."""
    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=loggers,
        callbacks=[
            checkpoints.best,
            checkpoints.last,
            EpochReport(),
            LearningRateMonitor(logging_interval="epoch"),  # lr-AdamW, in every logger
            ValidationPreview(),
            EpochSeed(seed),
        ],
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, steps),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    resume: Path | None,
) -> None:
    """``trainer.fit``, from ``resume``'s training state when given, without the warnings that
    say nothing about this run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resumed in place
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume is not None else None)
