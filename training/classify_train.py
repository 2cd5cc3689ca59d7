"""`seg-train classify`: train a timm image classifier with PyTorch Lightning on a group's CSV, on
class folders, or on the approved segments of the segment store.

A run writes ``<data-root>/DATA/models/<name>/<experiment>/``::

    checkpoints/best.ckpt, last.ckpt   best by val_acc, and the last epoch (segstack.classifier/1)
    csv_logs/metrics.csv               per-epoch metrics (CSVLogger), hparams.yaml
    tensorboard/                       the same, the learning rate and a few predicted val images,
                                       for TensorBoard (not with --no-tensorboard)
    torchscripts/model.pt              best network + softmax, traced
    onnx/model.onnx                    the same in ONNX: input "input" (N,3,H,W), output "probabilities"
    train_batches/batch_*.png          augmented training batches with their labels, to look at
    split.csv                          image,label,split of every image used
    run.json                           what made the run and how it went (training/run_record.py)

Weights & Biases logs (and uploads the checkpoints as an artifact, which ``seg-train wandb-pull``
fetches) only when WANDB_API_KEY is set and WANDB_MODE is not ``disabled``
(:mod:`training.classify_wandb`).

:func:`train_classifier` runs the steps in order; each is a function here or in the module of its
concern: the options (``classify_options``), the samples (``classify_samples``), the starting
network (``classify_network``), Lightning (``classify_trainer``) and the exports (``classify_export``).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L

from model_checkpoints.classifier import load_network, read_checkpoint
from segcontract.checkpoint_formats import CheckpointError, ClassifierModelInfo
from segcontract.errors import SegstackError
from store.layout import DataLayout
from training.classify_data import ClassifyDataset, DataError
from training.classify_export import export_onnx, export_torchscript
from training.classify_module import ClassifierModule
from training.classify_network import new_network
from training.classify_options import ClassifyOptions, checkpoint_arguments, run_name
from training.classify_samples import (
    ONE_SOURCE,
    TrainingSplit,
    collect_samples,
    split_for_training,
    write_split,
    write_train_batches,
)
from training.classify_trainer import RunCheckpoints, data_loaders, fit, local_loggers, make_trainer
from training.classify_wandb import finish_wandb, wandb_logger, wandb_wanted
from training.run_record import RunRecord

__all__ = ["ClassifyOptions", "ClassifyResult", "TrainingError", "train_classifier"]

log = logging.getLogger("seg-train")


class TrainingError(SegstackError):
    """A user mistake or unusable input: one line."""


@dataclass
class ClassifyResult:
    run_dir: Path
    best: Path
    last: Path
    torchscript: Path
    onnx: Path
    best_val_acc: float | None
    info: ClassifierModelInfo


def train_classifier(opts: ClassifyOptions) -> ClassifyResult:
    """Train; export the best network; return where everything went."""
    _check_options(opts)
    layout = DataLayout(Path(opts.data_root))
    name = run_name(opts)
    run_dir, experiment = _run_dir(opts, layout, name)
    use_wandb, wandb_line = wandb_wanted()
    L.seed_everything(opts.seed, workers=True, verbose=False)

    split, segment_model = _read_data(opts, layout)
    info = ClassifierModelInfo(opts.arch, len(split.classes), split.classes, (opts.imgsz, opts.imgsz))
    module = _new_module(opts, info, checkpoint_arguments(opts, name, experiment, segment_model))
    train_set, val_set = _datasets(split, info, run_dir, opts.seed)
    train_loader, val_loader = data_loaders(train_set, val_set, opts.batch_size, opts.workers)

    loggers = local_loggers(run_dir, opts.tensorboard, _resumed_step(opts))
    if opts.tensorboard:
        log.info("TensorBoard on (seg-train tensorboard %s); %s", run_dir / "tensorboard", wandb_line)
    else:
        log.info("TensorBoard off (--no-tensorboard); %s", wandb_line)
    wandb = wandb_logger(run_dir, name, experiment) if use_wandb else None
    if wandb is not None:
        loggers.append(wandb)
    checkpoints = RunCheckpoints.in_folder(run_dir / "checkpoints")
    trainer = make_trainer(
        opts.epochs,
        opts.accelerator,
        run_dir,
        loggers,
        checkpoints,
        steps=max(len(train_loader), 1),
        seed=opts.seed,
    )
    with _run_record(opts, layout, run_dir, split) as record:
        _fit(trainer, record, module, train_loader, val_loader, opts.resume)
        result = _exported(run_dir, checkpoints)
        record.final_metrics["best_val_acc"] = result.best_val_acc
    if wandb is not None:
        finish_wandb()
    return result


def _run_record(opts: ClassifyOptions, layout: DataLayout, run_dir: Path, split: TrainingSplit) -> RunRecord:
    """run.json's record of this run; the dataset hashed is the group's CSV with the images it
    lists, or the class folders."""
    if opts.cat is not None:
        dataset, files = layout.datasets / f"{opts.cat}.csv", {s.path for s in [*split.train, *split.val]}
    else:
        dataset, files = Path(opts.data), None
    arguments = {**asdict(opts), "classes": split.classes}
    return RunRecord(run_dir, "classify", sys.argv, arguments, dataset, opts.resume, dataset_files=files)


def _fit(trainer: L.Trainer, record: RunRecord, *args: Any) -> None:
    """:func:`fit`, the last epoch's metrics into ``record`` however it ends; Lightning turns a
    Ctrl+C into a graceful stop and SystemExit(1), which the record calls interrupted."""
    try:
        fit(trainer, *args)
    except SystemExit:
        if trainer.interrupted:
            record.status = "interrupted"
        raise
    finally:
        record.final_metrics.update(trainer.callback_metrics)
        record.final_metrics["epochs"] = trainer.current_epoch


def _check_options(opts: ClassifyOptions) -> None:
    if opts.epochs < 1 or opts.batch_size < 1 or opts.imgsz < 16:
        raise TrainingError("--epochs and --batch-size must be at least 1, --imgsz at least 16")
    if not 0 <= opts.val_fraction < 1:
        raise TrainingError(f"--val-fraction {opts.val_fraction}: between 0 and 1")
    if (opts.cat is None) == (opts.data is None):
        raise TrainingError(ONE_SOURCE)


def _run_dir(opts: ClassifyOptions, layout: DataLayout, name: str) -> tuple[Path, str]:
    """The run's folder and its experiment name; a folder that holds a run already is refused,
    unless this run resumes one of its checkpoints."""
    experiment = opts.experiment or datetime.now().strftime("%Y%m%d-%H%M%S")
    for label, value in (("--name", name), ("--experiment", experiment)):
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise TrainingError(f"{label} {value!r}: a folder name, without slashes")
    run_dir = layout.models / name / experiment
    if run_dir.exists() and any(run_dir.iterdir()):
        resuming_here = opts.resume is not None and Path(opts.resume).resolve().is_relative_to(
            run_dir.resolve()
        )
        if not resuming_here:
            raise TrainingError(
                f"{run_dir}: a run is already there; give another --experiment (or --resume one of "
                "its checkpoints to continue it)"
            )
    return run_dir, experiment


def _read_data(opts: ClassifyOptions, layout: DataLayout) -> tuple[TrainingSplit, str | None]:
    """The classes and the train/val split, what was left out logged; and whose segments were
    used (with --use-segments)."""
    try:
        samples, report = collect_samples(opts, layout)
        for line in report.lines():
            log.warning("%s", line)
        return split_for_training(samples, opts.val_fraction, opts.seed), report.segment_model
    except DataError as exc:
        raise TrainingError(str(exc)) from None


def _new_module(
    opts: ClassifyOptions, info: ClassifierModelInfo, training_args: dict[str, Any]
) -> ClassifierModule:
    """The module to train: a new network (pretrained where it can be), or, resuming, one whose
    weights the checkpoint replaces."""
    try:
        if opts.resume is not None:
            _check_resume(Path(opts.resume), info, opts.epochs, opts.trust_checkpoint)
            network = None
        else:
            network = new_network(info, opts.pretrained)
        return ClassifierModule(info, lr=opts.lr, network=network, **training_args)
    except CheckpointError as exc:  # an unknown --arch
        raise TrainingError(f"--arch: {exc}") from None


def _resumed_step(opts: ClassifyOptions) -> int:
    """The global step --resume's checkpoint (checked by :func:`_check_resume`) was saved at; 0
    for a new run."""
    if opts.resume is None:
        return 0
    _saved, payload = read_checkpoint(Path(opts.resume), opts.trust_checkpoint)
    return int(payload.get("global_step") or 0)


def _check_resume(path: Path, info: ClassifierModelInfo, epochs: int, trust: bool = False) -> None:
    """``path`` continues this run: the same network and classes, a training state, epochs to go."""
    try:
        saved, payload = read_checkpoint(path, trust)
    except CheckpointError as exc:
        raise TrainingError(f"--resume: {exc}") from None
    for field, now in (
        ("arch", info.arch),
        ("class_names", info.class_names),
        ("input_size", info.input_size),
        ("resize", info.resize),
    ):
        was = getattr(saved, field)
        if was != now:
            raise TrainingError(f"--resume {path}: its {field} is {was}, this run's is {now}")
    if "loops" not in payload or "optimizer_states" not in payload:
        raise TrainingError(f"--resume {path}: holds weights only, no training state to continue")
    done = _epochs_done(payload)
    if done >= epochs:
        raise TrainingError(f"--resume {path}: already trained {done} epochs; ask for more --epochs to go on")


def _epochs_done(payload: dict[str, Any]) -> int:
    """Epochs a Lightning checkpoint has trained: its fit loop's processed epochs (a checkpoint
    saved at validation end has not marked its epoch completed yet, and resuming starts after it)."""
    try:
        return int(payload["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return int(payload.get("epoch", -1)) + 1  # the 0-based epoch it was saved in


def _datasets(
    split: TrainingSplit, info: ClassifierModelInfo, run_dir: Path, seed: int
) -> tuple[ClassifyDataset, ClassifyDataset]:
    """The train and val datasets; split.csv and a few augmented training batches written down."""
    train_set = ClassifyDataset(split.train, info, train=True)
    val_set = ClassifyDataset(split.val, info, train=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_split(run_dir / "split.csv", split.train, split.val)
    write_train_batches(train_set, run_dir / "train_batches", seed)
    return train_set, val_set


def _exported(run_dir: Path, checkpoints: RunCheckpoints) -> ClassifyResult:
    """The best checkpoint loaded as build-repo reads it (weights_only=True), exported to
    TorchScript and ONNX."""
    best, last = checkpoints.paths()
    try:
        saved_info, best_network = load_network(best)
    except CheckpointError as exc:
        raise TrainingError(f"the trained checkpoint does not load as build-repo reads it: {exc}") from None
    torchscript = export_torchscript(best_network, saved_info, run_dir / "torchscripts" / "model.pt")
    onnx_path = export_onnx(best_network, saved_info, run_dir / "onnx" / "model.onnx")
    return ClassifyResult(run_dir, best, last, torchscript, onnx_path, checkpoints.best_score(), saved_info)
