"""segmentation-models-pytorch training, with seed 001's options: any architecture and encoder,
albumentations, optional mix-up, validation mIoU and loss per epoch in metrics.csv and (unless
--no-tensorboard) TensorBoard (:mod:`training.semantic_board`), resumable checkpoints."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from model_checkpoints.smp import (
    CheckpointError,
    SemanticModelInfo,
    TrainingState,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from training.run_record import RunRecord
from training.semantic_board import EpochRecord, validate
from training.semantic_data import (
    IGNORE_INDEX,
    ClassTable,
    DataError,
    Sample,
    SegmentationDataset,
    find_samples,
    read_class_table,
    split_samples,
    transforms,
)

log = logging.getLogger("seg-train")

MIXUP_ALPHA = 0.4  # the Beta(alpha, alpha) mix-up weights are drawn from


@dataclass
class SemanticTrainOptions:
    data_root: Path
    num_classes: int
    model_name: str
    resume_from: Path | None = None
    trust_checkpoint: bool = False  # load --model with the full unpickler
    arch: str = "Unet"
    encoder: str = "efficientnet-b0"
    epochs: int = 50
    batch_size: int = 8
    size: tuple[int, int] = (640, 320)  # (width, height)
    use_mixup: bool = False
    mode: str = "seg"
    colors: Path | None = None
    lr: float = 1e-3
    val_fraction: float = 0.2
    output_dir: Path = Path("runs/semantic")
    device: str | None = None
    workers: int = 2
    seed: int = 0
    tensorboard: bool = True  # event files in <run>/tensorboard


def train_semantic(opts: SemanticTrainOptions, progress: Callable = lambda it, **kw: it) -> Path:
    """Train; return the path of the best checkpoint."""
    if opts.mode != "seg":
        raise DataError(f"--mode {opts.mode!r} is not supported; use --mode seg")
    torch.manual_seed(opts.seed)
    table = read_class_table(opts.colors or _default_colors(opts.data_root), opts.num_classes)
    train_samples, val_samples = split_samples(find_samples(opts.data_root), opts.val_fraction, opts.seed)
    info = SemanticModelInfo(opts.arch, opts.encoder, opts.num_classes, table.names, table.colors, opts.size)
    model, state = _starting_point(opts, info)
    device = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=1e-4)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    train_loader, val_loader = _loaders(opts, table, info, train_samples, val_samples)
    run_dir = Path(opts.output_dir) / opts.model_name
    record = EpochRecord(run_dir, info, tensorboard=opts.tensorboard, resumed_at=state.epoch)
    best_path, last_path = run_dir / "best.pth", run_dir / "last.pth"
    with _run_record(opts, run_dir) as run, closing(record):
        for epoch in range(state.epoch + 1, opts.epochs + 1):
            rng = _seed_epoch(opts.seed, epoch, train_loader)
            batches = progress(train_loader, desc=f"epoch {epoch}/{opts.epochs}")
            total = _train_one_epoch(model, batches, optimizer, device, rng if opts.use_mixup else None)
            train_loss = total / max(len(train_samples), 1)
            validation = validate(model, val_loader, opts.num_classes, device)
            miou = validation.miou
            record.epoch(epoch, train_loss, validation, optimizer.param_groups[0]["lr"])
            log.info("epoch %d/%d: train loss %.4f, val mIoU %.4f", epoch, opts.epochs, train_loss, miou)
            state = TrainingState(epoch, max(state.best_miou, miou), optimizer.state_dict())
            run.final_metrics.update(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=validation.loss,
                val_mIoU=miou,
                best_val_mIoU=state.best_miou,
            )
            save_checkpoint(last_path, info, model, state)
            if miou >= state.best_miou or not best_path.exists():
                save_checkpoint(best_path, info, model, state)
    return best_path if best_path.exists() else last_path


def _seed_epoch(seed: int, epoch: int, train_loader: DataLoader) -> np.random.Generator:
    """Seed what is random in an epoch (the shuffle, the workers, the augmentation, mix-up) from
    (seed, epoch) alone, so an epoch of a resumed run is that epoch of an uninterrupted one."""
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    torch.manual_seed(epoch_seed)
    train_loader.dataset.transform.set_random_seed(epoch_seed)
    return np.random.default_rng(epoch_seed)


def _run_record(opts: SemanticTrainOptions, run_dir: Path) -> RunRecord:
    """run.json's record of this run (resumed only when --model's file exists)."""
    resumed = opts.resume_from if opts.resume_from is not None and Path(opts.resume_from).is_file() else None
    return RunRecord(run_dir, "semantic", sys.argv, asdict(opts), opts.data_root, resumed)


def _starting_point(
    opts: SemanticTrainOptions, info: SemanticModelInfo
) -> tuple[torch.nn.Module, TrainingState]:
    """The model and training state this run starts from: --model's when it exists, else a new
    model (ImageNet encoder weights where they can be had), checked to serve at --size."""
    model, state = _resumed(opts, info) if opts.resume_from is not None else (None, TrainingState())
    if state.epoch >= opts.epochs:
        raise DataError(
            f"{opts.resume_from} is already at epoch {state.epoch}; ask for more --epochs to go on"
        )
    try:
        model = model or _new_model(info)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    check_input_size(model, info)
    return model, state


def _resumed(
    opts: SemanticTrainOptions, info: SemanticModelInfo
) -> tuple[torch.nn.Module | None, TrainingState]:
    """The model and state saved in --model, which must be this run's architecture, encoder and
    class count; a missing file is a warning and a fresh start."""
    if not Path(opts.resume_from).is_file():
        log.warning("%s does not exist: training from scratch", opts.resume_from)
        return None, TrainingState()
    try:
        saved, payload = load_checkpoint(opts.resume_from, trust=opts.trust_checkpoint)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    if (saved.arch, saved.encoder, saved.num_classes) != (info.arch, info.encoder, info.num_classes):
        was = f"{saved.arch}/{saved.encoder} with {saved.num_classes} classes"
        now = f"{info.arch}/{info.encoder} with {info.num_classes}"
        raise DataError(f"{opts.resume_from}: a {was}; this run asks for {now}")
    model = build_model(info)
    model.load_state_dict(payload["state_dict"])
    state = TrainingState(int(payload["epoch"]), float(payload["best_miou"]), payload["optimizer"])
    log.info("resuming from %s (epoch %d, best mIoU %.4f)", opts.resume_from, state.epoch, state.best_miou)
    return model, state


def _encoder_weights(encoder: str) -> str | None:
    """ImageNet weights where they can be downloaded; random, with a warning, offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        log.warning("offline (HF_HUB_OFFLINE=1): the %s encoder starts from random weights", encoder)
        return None
    return "imagenet"


def _new_model(info: SemanticModelInfo) -> torch.nn.Module:
    model = build_model(info, None)  # a CheckpointError here names a bad --arch/--backend
    weights = _encoder_weights(info.encoder)
    if weights is None:
        return model
    try:
        return build_model(info, weights)
    except (OSError, RuntimeError, ValueError, CheckpointError) as exc:  # offline, or no such weights
        log.warning(
            "no ImageNet weights for %s (%s): starting from random weights", info.encoder, type(exc).__name__
        )
        return model


def check_input_size(model: torch.nn.Module, info: SemanticModelInfo) -> None:
    """Sizes divisible by the encoder's output stride, for every architecture: FPN and DeepLabV3+
    fail without it, and build-repo serves only such sizes, so a trained checkpoint is servable."""
    stride = int(getattr(model.encoder, "output_stride", 32))
    width, height = info.input_size
    if width % stride or height % stride:
        w2, h2 = (max(stride, round(v / stride) * stride) for v in (width, height))
        raise DataError(
            f"--size {width} {height}: {info.arch} with {info.encoder} needs multiples of {stride}, "
            f"e.g. --size {w2} {h2}"
        )


def _loaders(
    opts: SemanticTrainOptions,
    table: ClassTable,
    info: SemanticModelInfo,
    train_samples: list[Sample],
    val_samples: list[Sample],
) -> tuple[DataLoader, DataLoader]:
    """Augmented, shuffled training batches (the last, partial one dropped when there is more than
    one batch) and validation batches in order."""
    loader_args = {"batch_size": opts.batch_size, "num_workers": opts.workers}
    train_loader = DataLoader(
        SegmentationDataset(train_samples, table, transforms(opts.size, info.mean, info.std, train=True)),
        shuffle=True,
        drop_last=len(train_samples) > opts.batch_size,
        **loader_args,
    )
    val_loader = DataLoader(
        SegmentationDataset(val_samples, table, transforms(opts.size, info.mean, info.std, train=False)),
        **loader_args,
    )
    return train_loader, val_loader


def _train_one_epoch(
    model: torch.nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    mixup: np.random.Generator | None,
) -> float:
    """One pass over ``batches``, mixing each batch with a shuffled copy of itself when ``mixup``
    (its generator) is given; returns the loss summed over the images."""
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    model.train()
    total = 0.0
    for images, masks in batches:
        images, masks = images.to(device), masks.to(device)
        if mixup is not None and len(images) > 1:
            lam = float(mixup.beta(MIXUP_ALPHA, MIXUP_ALPHA))
            perm = torch.randperm(len(images), device=device)
            logits = model(lam * images + (1 - lam) * images[perm])
            loss = lam * loss_fn(logits, masks) + (1 - lam) * loss_fn(logits, masks[perm])
        else:
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss) * len(images)
    return total


def _default_colors(root: Path) -> Path | None:
    candidate = Path(root) / "colors.csv"
    return candidate if candidate.is_file() else None
