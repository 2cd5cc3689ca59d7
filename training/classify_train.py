"""`seg-train classify`: train a timm image classifier with PyTorch Lightning on a group's CSV, on
class folders, or on the approved segments of the segment store.

A run writes ``<data-root>/DATA/models/<name>/<experiment>/``::

    checkpoints/best.ckpt, last.ckpt   best by val_acc, and the last epoch (segstack.classifier/1)
    csv_logs/metrics.csv               per-epoch metrics (CSVLogger), hparams.yaml
    tensorboard/                       the same for TensorBoard
    torchscripts/model.pt              best network + softmax, traced
    onnx/model.onnx                    the same in ONNX: input "input" (N,3,H,W), output "probabilities"
    train_batches/batch_*.png          augmented training batches with their labels, to look at
    split.csv                          image,label,split of every image used

Weights & Biases logs (and uploads the checkpoints as an artifact, which ``seg-train wandb-pull``
fetches) only when WANDB_API_KEY is set and WANDB_MODE is not ``disabled``; it never prompts, and a
W&B server that cannot be reached is a warning, not a failed run.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader

from model_checkpoints.classifier import build_network, load_network, read_checkpoint
from segcontract.checkpoint_formats import CheckpointError, ClassifierModelInfo
from store.errors import StoreError
from store.layout import DataLayout, database_url
from training.classify_data import (
    ClassifyDataset,
    DataError,
    ReadReport,
    Sample,
    batch_grid,
    check_readable,
    class_names_of,
    counts_line,
    read_csv_samples,
    read_folder_samples,
    segment_samples,
    split_samples,
    store_names,
)
from training.classify_module import ClassifierModule, ProbabilityNetwork

log = logging.getLogger("seg-train")

DEFAULT_ARCH = "resnet18"
ONNX_OPSET = 17
TRAIN_BATCH_GRIDS = 3
GRID_IMAGES = 16


def _no_tips(record: logging.LogRecord) -> bool:
    """Lightning advertises its cloud logger on every run; this command's output stays about the run."""
    return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_tips)


class TrainingError(Exception):
    """A user mistake or unusable input: one line."""


@dataclass
class ClassifyOptions:
    cat: str | None = None
    data: Path | None = None
    data_root: Path = Path(".")
    arch: str = DEFAULT_ARCH
    imgsz: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    resume: Path | None = None
    trust_checkpoint: bool = False  # load --resume with the full unpickler
    name: str | None = None
    experiment: str | None = None
    pretrained: bool = True
    workers: int = 2
    use_segments: bool = False
    segment_model: str | None = None
    db: str | None = None
    accelerator: str = "auto"


@dataclass
class ClassifyResult:
    run_dir: Path
    best: Path
    last: Path
    torchscript: Path
    onnx: Path
    best_val_acc: float | None
    info: ClassifierModelInfo


# --- W&B -----------------------------------------------------------------------------------------


def wandb_wanted() -> tuple[bool, str]:
    """(log to W&B?, a line saying why). Without a key W&B is switched off for the whole process
    (WANDB_MODE=disabled), so nothing tries the network or prompts."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "disabled"
        os.environ.setdefault("WANDB_SILENT", "true")
        return False, "W&B off (no WANDB_API_KEY)"
    if os.environ.get("WANDB_MODE", "").strip().lower() == "disabled":
        return False, "W&B off (WANDB_MODE=disabled)"
    os.environ.setdefault("WANDB_SILENT", "true")  # its banner; the run's address is logged instead
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return True, "W&B on" + (" (offline: wandb sync uploads later)" if mode in {"offline", "dryrun"} else "")


def _wandb_logger(run_dir: Path, name: str, experiment: str):
    """A started WandbLogger, or None (with a warning) when W&B cannot start."""
    try:
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(
            name=f"{name}/{experiment}",
            project=os.environ.get("WANDB_PROJECT") or "segstack-classify",
            save_dir=str(run_dir),
            log_model=True,  # the checkpoints become an artifact: seg-train wandb-pull
            settings=wandb.Settings(init_timeout=30),  # an unreachable server: a warning in 30 s
        )
        url = getattr(logger.experiment, "url", None)  # starts the run now, not mid-training
    except Exception as exc:  # W&B raises many types (CommError, UsageError, timeouts)
        reason = _first_line(exc)
        key = os.environ.get("WANDB_API_KEY", "")
        if key:
            reason = reason.replace(key, "***")
        log.warning("W&B unavailable (%s): training without it", reason)
        return None
    if url:
        log.info("W&B run: %s", url)
    return logger


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


# --- the data ------------------------------------------------------------------------------------


def _default_name(opts: ClassifyOptions) -> str:
    if opts.name:
        return opts.name
    if opts.cat:
        return opts.cat
    return Path(opts.data).resolve().name


def collect_samples(opts: ClassifyOptions, layout: DataLayout) -> tuple[list[Sample], ReadReport]:
    """Every usable sample (whole images, or segments with --use-segments) and what was skipped."""
    if (opts.cat is None) == (opts.data is None):
        raise TrainingError("give one of --cat NAME (DATA/datasets/NAME.csv) or --data DIR (class folders)")
    report = ReadReport()
    if opts.cat is not None:
        if not opts.cat or "/" in opts.cat or opts.cat in (".", ".."):
            raise TrainingError(f"--cat {opts.cat!r}: a group name under {layout.datasets}")
        samples = read_csv_samples(layout.datasets / f"{opts.cat}.csv", layout.pictures, report)
        where = layout.datasets / f"{opts.cat}.csv"
    else:
        samples = read_folder_samples(Path(opts.data), report)
        where = Path(opts.data)
    if not samples:
        raise TrainingError(f"{where}: no labelled images")
    samples = _without_badlisted(samples, opts, layout, report)
    if not samples:
        raise TrainingError(
            f"{where}: every labelled image is on the segment store's badlist (`seg-client segments "
            "badlist push` put them there); nothing to train on"
        )
    samples, sizes = check_readable(samples, report, workers=max(opts.workers, 4))
    if opts.use_segments:
        samples = _segments_of(samples, sizes, opts, layout, report)
    return samples, report


def _without_badlisted(
    samples: list[Sample], opts: ClassifyOptions, layout: DataLayout, report: ReadReport
) -> list[Sample]:
    """The samples whose image is not on the store's badlist now (whatever the CSV still lists:
    it was written by the last ``groups pull``)."""
    from store.badlist import read_badlist

    try:
        badlist = read_badlist(opts.db, layout)
    except StoreError as exc:
        raise TrainingError(f"{exc} (training reads its badlist)") from None
    if badlist is None:
        return samples
    kept = [s for s in samples if not any(badlist.holds(n) for n in store_names(s, layout.pictures))]
    report.badlisted = len(samples) - len(kept)
    return kept


def _segments_of(
    images: list[Sample],
    sizes: dict[Path, tuple[int, int]],
    opts: ClassifyOptions,
    layout: DataLayout,
    report: ReadReport,
) -> list[Sample]:
    from store.records import Status
    from store.segment_store import SegmentStore

    url = database_url(opts.db, layout)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise TrainingError(f"segment store {url}: no such file; pass --db, or run seg-client segments build")
    try:
        with SegmentStore.open(url, create=False) as store:  # training only reads the store
            model = store.segment_model(opts.segment_model)
            segments = store.segments(model=model, statuses=[Status.APPROVED])
            picture_sha256 = {image.path: image.sha256 for image in store.images()}
    except StoreError as exc:
        raise TrainingError(str(exc)) from None
    log.info("%d approved segments of %s in %s", len(segments), model, url)
    report.segment_model = model
    return segment_samples(images, segments, sizes, layout.pictures, report, picture_sha256)


def _write_split(path: Path, train: list[Sample], val: list[Sample]) -> None:
    rows = {}
    for split, samples in (("train", train), ("val", val)):
        for s in samples:
            rows[s.key] = (s.key, s.label, split)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "split"])
        writer.writerows(rows[k] for k in sorted(rows))


# --- the run -------------------------------------------------------------------------------------


def _run_dir(opts: ClassifyOptions, layout: DataLayout, name: str) -> tuple[Path, str]:
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


def _check_resume(path: Path, info: ClassifierModelInfo, epochs: int, trust: bool = False) -> None:
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


def _new_network(info: ClassifierModelInfo, pretrained: bool) -> torch.nn.Module:
    """Pretrained weights where timm can get them; random ones, with a warning, otherwise."""
    try:
        network = build_network(info)  # an unknown --arch is an error, not a warning
    except CheckpointError as exc:
        raise TrainingError(f"--arch: {exc}") from None
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
        reason = unreachable or _first_line(exc)
        log.warning("no pretrained weights for %s (%s): starting from random weights", info.arch, reason)
        return network


def _hub_unreachable(seconds: float = 5.0) -> str | None:
    """Why the Hugging Face hub (where timm's weights are) cannot be reached, or None. Skipped
    behind a proxy, which only the hub client knows how to use."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
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


def write_train_batches(dataset: ClassifyDataset, folder: Path, seed: int) -> list[Path]:
    """A few augmented training batches as labelled PNG grids."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=GRID_IMAGES, shuffle=True, generator=generator, num_workers=0)
    written = []
    for i, (images, labels) in enumerate(loader):
        if i >= TRAIN_BATCH_GRIDS:
            break
        path = folder / f"batch_{i}.png"
        cv2.imwrite(str(path), batch_grid(images, labels.tolist(), dataset.info))
        written.append(path)
    return written


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


def _training_args(opts: ClassifyOptions, name: str, experiment: str, model: str | None) -> dict[str, Any]:
    """The plain (str, int, float, bool, None) training arguments the checkpoint records."""
    return {
        "name": name,
        "experiment": experiment,
        "cat": opts.cat,
        "data": str(opts.data) if opts.data is not None else None,
        "arch": opts.arch,
        "imgsz": int(opts.imgsz),
        "epochs": int(opts.epochs),
        "batch_size": int(opts.batch_size),
        "val_fraction": float(opts.val_fraction),
        "seed": int(opts.seed),
        "pretrained": bool(opts.pretrained),
        "use_segments": bool(opts.use_segments),
        "segment_model": model,
    }


def train_classifier(opts: ClassifyOptions) -> ClassifyResult:
    """Train; export the best network; return where everything went."""
    if opts.epochs < 1 or opts.batch_size < 1 or opts.imgsz < 16:
        raise TrainingError("--epochs and --batch-size must be at least 1, --imgsz at least 16")
    if not 0 <= opts.val_fraction < 1:
        raise TrainingError(f"--val-fraction {opts.val_fraction}: between 0 and 1")
    if (opts.cat is None) == (opts.data is None):
        raise TrainingError("give one of --cat NAME (DATA/datasets/NAME.csv) or --data DIR (class folders)")
    layout = DataLayout(Path(opts.data_root))
    name = _default_name(opts)
    run_dir, experiment = _run_dir(opts, layout, name)
    use_wandb, wandb_line = wandb_wanted()
    L.seed_everything(opts.seed, workers=True, verbose=False)

    try:
        samples, report = collect_samples(opts, layout)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    for line in report.lines():
        log.warning("%s", line)
    classes = class_names_of(samples)
    if len(classes) < 2:
        found = classes[0] if classes else "none"
        raise TrainingError(f"{len(samples)} usable samples, all of class {found}: at least 2 classes needed")
    train, val = split_samples(samples, opts.val_fraction, opts.seed)
    if not val:
        raise TrainingError(
            "no validation samples: give --val-fraction > 0 (or val rows in the split column)"
        )
    if not train:
        raise TrainingError("no training samples: every sample is in the validation split")
    log.info("classes: %s", ", ".join(classes))
    log.info(
        "train %d (%s); val %d (%s)",
        len(train),
        counts_line(train, classes),
        len(val),
        counts_line(val, classes),
    )
    missing = sorted(set(classes) - {s.label for s in train})
    if missing:
        log.warning("no training samples of %s", ", ".join(missing))

    info = ClassifierModelInfo(opts.arch, len(classes), classes, (opts.imgsz, opts.imgsz))
    if opts.resume is not None:
        _check_resume(Path(opts.resume), info, opts.epochs, opts.trust_checkpoint)
        network = None  # the checkpoint's weights replace whatever is built
    else:
        network = _new_network(info, opts.pretrained)
    try:
        module = ClassifierModule(
            info,
            lr=opts.lr,
            network=network,
            **_training_args(opts, name, experiment, report.segment_model),
        )
    except CheckpointError as exc:
        raise TrainingError(f"--arch: {exc}") from None

    train_set = ClassifyDataset(train, info, train=True)
    val_set = ClassifyDataset(val, info, train=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_split(run_dir / "split.csv", train, val)
    write_train_batches(train_set, run_dir / "train_batches", opts.seed)

    loader_args: dict[str, Any] = {
        "batch_size": opts.batch_size,
        "num_workers": opts.workers,
        "persistent_workers": opts.workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train) > opts.batch_size, **loader_args)
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)

    _keep_earlier_metrics(run_dir / "csv_logs")
    loggers: list[Any] = [
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False),
        CSVLogger(save_dir=str(run_dir), name="csv_logs", version=""),
    ]
    log.info("TensorBoard on (tensorboard --logdir %s); %s", run_dir / "tensorboard", wandb_line)
    if use_wandb:
        wandb_logger = _wandb_logger(run_dir, name, experiment)
        if wandb_logger is not None:
            loggers.append(wandb_logger)
    # two callbacks: since Lightning 2.6, save_last writes last.ckpt only in an epoch that also
    # saved a best one, so "last" is its own un-monitored checkpoint, rewritten every epoch
    checkpoints = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=str(checkpoints),
        filename="best",
        monitor="val_acc",
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    last_checkpoint = ModelCheckpoint(
        dirpath=str(checkpoints),
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
    )
    steps = max(len(train_loader), 1)
    trainer = L.Trainer(
        max_epochs=opts.epochs,
        accelerator=opts.accelerator,
        devices=1,
        logger=loggers,
        callbacks=[checkpoint, last_checkpoint, EpochReport()],
        default_root_dir=str(run_dir),
        num_sanity_val_steps=0,
        log_every_n_steps=min(50, steps),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # resumed in place
        trainer.fit(
            module,
            train_loader,
            val_loader,
            ckpt_path=str(opts.resume) if opts.resume is not None else None,
        )

    last = checkpoints / "last.ckpt"
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else last
    if not best.is_file():
        best = last
    try:
        saved_info, best_network = load_network(best)  # as build-repo will: weights_only=True
    except CheckpointError as exc:
        raise TrainingError(f"the trained checkpoint does not load as build-repo reads it: {exc}") from None
    torchscript = export_torchscript(best_network, saved_info, run_dir / "torchscripts" / "model.pt")
    onnx_path = export_onnx(best_network, saved_info, run_dir / "onnx" / "model.onnx")
    if use_wandb and len(loggers) > 2:
        _finish_wandb()
    score = checkpoint.best_model_score
    return ClassifyResult(
        run_dir,
        best,
        last,
        torchscript,
        onnx_path,
        float(score) if score is not None else None,
        saved_info,
    )


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


def _finish_wandb() -> None:
    try:
        import wandb

        wandb.finish()
    except Exception as exc:  # the run's data is local; wandb sync can upload it later
        log.warning("W&B did not finish cleanly (%s)", _first_line(exc))
