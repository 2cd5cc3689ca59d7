"""Ultralytics YOLOv8-seg training with the seeds' flags, any ultralytics argument, and a YAML
config shaped like seed 002's CONFIG. TensorBoard is on; Weights & Biases only when WANDB_API_KEY
is in the environment and WANDB_MODE is not ``disabled`` (never prompted for)."""

from __future__ import annotations

import difflib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from model_checkpoints import ultralytics as ultralytics_checkpoint
from segcontract.errors import SegstackError
from training.run_record import RunRecord

# the training arguments ultralytics unpickles a .pt from (with its full unpickler): --model and
# the model=, resume=, pretrained= and distill_model= overrides, from the command line or --config
CHECKPOINT_ARGUMENTS = ("model", "resume", "pretrained", "distill_model")
ARCHITECTURE_ARGUMENTS = {"model", "distill_model"}  # may also name a .yaml (nothing unpickled)


class TrainingError(SegstackError):
    """A user mistake (unknown argument, missing file, no weights offline): one line."""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` words → dict, values parsed as YAML scalars (0.01, true, [1, 2], AdamW)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TrainingError(
                f"{pair!r}: extra training arguments are key=value (e.g. lr0=0.002 cos_lr=true)"
            )
        out[key.strip()] = yaml.safe_load(value) if value else None
    return out


def load_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise TrainingError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TrainingError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path}: expected a mapping of training arguments like seed 002's CONFIG")
    return data


def validate_arguments(args: dict[str, Any]) -> None:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    for key in args:
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, DEFAULT_CFG_DICT, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TrainingError(f"unknown training argument {key!r}{hint}")


def checked_checkpoints(arguments: dict[str, Any], folder: Path, trust: bool = False) -> dict[str, Any]:
    """``arguments`` with every checkpoint they name (:data:`CHECKPOINT_ARGUMENTS`; a hub name is
    downloaded first) replaced by a private copy in ``folder`` that was loaded here with
    ``weights_only=True`` and the allowlist of :mod:`model_checkpoints.ultralytics`, and refused if
    it names anything else, before ultralytics (whose loader unpickles fully) reads it.

    ultralytics re-reads these paths while it trains (``pretrained=`` and ``resume=`` long after
    the start): handing it the user's path would let a file replaced after the check be unpickled.
    With ``trust`` nothing is checked and the arguments go through as given."""
    if trust:
        return dict(arguments)
    out = dict(arguments)
    for key in CHECKPOINT_ARGUMENTS:
        value = out.get(key)
        if value is None or isinstance(value, bool) or value == "":
            continue  # resume=true / pretrained=false and the like: no file
        name = str(value)
        if key in ARCHITECTURE_ARGUMENTS and Path(name).suffix in {".yaml", ".yml"}:
            continue  # an architecture: random initialisation, nothing unpickled
        try:
            out[key] = str(ultralytics_checkpoint.private_copy(_local_checkpoint(key, name), folder))
        except (ultralytics_checkpoint.UnsafeCheckpoint, ultralytics_checkpoint.UnreadableCheckpoint) as exc:
            raise TrainingError(str(exc)) from None
    return out


def _local_checkpoint(key: str, name: str) -> Path:
    """The local file a checkpoint argument names: the file itself, or ultralytics' download of a
    hub name (``yolov8n-seg.pt``)."""
    path = Path(name)
    if path.is_file():
        return path
    option = "--model " if key == "model" else f"{key}="
    if path.suffix == ".pt" and len(path.parts) > 1:
        also = ", or a .yaml" if key in ARCHITECTURE_ARGUMENTS else ""
        raise TrainingError(
            f"{name}: no such file; give {option}a local .pt, a hub name like yolov8n-seg.pt{also}"
        )
    try:
        return _download(name)
    except Exception as exc:  # ultralytics raises many kinds when the download fails
        stem = path.stem
        raise TrainingError(
            f"could not load {name} ({type(exc).__name__}; offline?): use --model {stem}.yaml to start from "
            f"random weights, or {option}PATH/TO/{path.name} for a local checkpoint"
        ) from None


def load_model(model: str, name: str):
    """A YOLO object for a .yaml (random weights) or a .pt that :func:`checked_checkpoints` checked
    (or that --trust-checkpoint lets through); ``name``: what the user called it."""
    from ultralytics import YOLO

    try:
        return YOLO(model)
    except Exception as exc:  # an unknown .yaml; with --trust-checkpoint, anything the unpickler raises
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"{name}: ultralytics could not load it ({reason[:200]})") from None


def _download(model: str) -> Path:
    """ultralytics' pretrained weights by name (its own cache and download)."""
    from ultralytics.utils.downloads import attempt_download_asset

    local = Path(attempt_download_asset(model))
    if not local.is_file():
        raise FileNotFoundError(model)
    return local


def _wandb_off_reason() -> str | None:
    """Why Weights & Biases stays off, or None when it logs."""
    if not os.environ.get("WANDB_API_KEY"):
        return "no WANDB_API_KEY"
    if os.environ.get("WANDB_MODE", "").strip().lower() == "disabled":
        return "WANDB_MODE=disabled"
    try:
        import wandb as _  # noqa: F401
    except ImportError:
        return "WANDB_API_KEY is set but the wandb package is not installed: pip install wandb"
    return None


def configure_loggers(tensorboard: bool = True) -> str:
    """TensorBoard on (off with ``tensorboard=False``: --no-tensorboard); W&B only with a key in
    the environment and W&B not disabled. Returns a line saying which, with the reason."""
    from ultralytics import settings

    off = _wandb_off_reason()
    settings.update({"tensorboard": tensorboard, "wandb": off is None})
    board = "TensorBoard on" if tensorboard else "TensorBoard off (--no-tensorboard)"
    if off is not None:
        return f"{board}; W&B off ({off})"
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return f"{board}, Weights & Biases on (WANDB_API_KEY set" + (
        ", offline: wandb sync uploads later)" if mode in {"offline", "dryrun"} else ")"
    )


LOGGER_SETTINGS = ("tensorboard", "wandb")  # the ultralytics settings configure_loggers sets


@contextmanager
def run_loggers(tensorboard: bool = True) -> Iterator[str]:
    """:func:`configure_loggers` for one run (yields its line); the user's ultralytics settings
    (its settings.json) are put back as they were when the run ends."""
    from ultralytics import settings

    before = {key: settings[key] for key in LOGGER_SETTINGS if key in settings}
    try:
        yield configure_loggers(tensorboard)
    finally:
        settings.update(before)


_METRICS = (  # ultralytics' validation keys, as the epoch lines name them
    ("box mAP50", "metrics/mAP50(B)"),
    ("mask mAP50", "metrics/mAP50(M)"),
    ("mask mAP50-95", "metrics/mAP50-95(M)"),
)


def _losses(trainer) -> str:
    if getattr(trainer, "tloss", None) is None:  # a tensor in some ultralytics: never its truth value
        return ""
    losses = trainer.label_loss_items(trainer.tloss, prefix="train")
    return "".join(f"  {key.removeprefix('train/')} {value:.4g}" for key, value in losses.items())


def _metrics(trainer) -> str:
    metrics = getattr(trainer, "metrics", None) or {}
    return "".join(f"  {name} {float(metrics[key]):.4f}" for name, key in _METRICS if key in metrics)


def add_progress_lines(model, echo: Callable[[str], None]) -> None:
    """Register ultralytics callbacks on ``model`` that ``echo`` one line when training starts, one
    per epoch (its mean training losses, its seconds, and the mAPs when it was validated) and one
    for the final validation of best.pt, whatever ultralytics' own verbosity (YOLO_VERBOSE):

        epoch 3/26  box_loss 1.234  seg_loss 2.345  cls_loss 1.87  dfl_loss 1.123  (12.8 s)"""
    state = {"epoch": False, "validated": False}

    def on_train_start(trainer) -> None:
        images = len(trainer.train_loader.dataset)
        echo(f"training {trainer.epochs} epochs on {images} images → {trainer.save_dir}")

    def on_train_epoch_end(trainer) -> None:
        state["epoch"] = True  # not called for the final validation of best.pt

    def on_val_end(validator) -> None:
        state["validated"] = True

    def on_fit_epoch_end(trainer) -> None:
        metrics = _metrics(trainer) if state["validated"] else ""
        if state["epoch"]:
            seconds = getattr(trainer, "epoch_time", None)
            took = f"  ({seconds:.1f} s)" if seconds else ""
            echo(f"epoch {trainer.epoch + 1}/{trainer.epochs}{_losses(trainer)}{metrics}{took}")
        elif metrics:
            echo(f"final validation of {Path(trainer.best).name}{metrics}")
        state["epoch"] = state["validated"] = False

    for event, callback in (
        ("on_train_start", on_train_start),
        ("on_train_epoch_end", on_train_epoch_end),
        ("on_val_end", on_val_end),
        ("on_fit_epoch_end", on_fit_epoch_end),
    ):
        model.add_callback(event, callback)


def add_epoch_seeds(model) -> None:
    """Seed each epoch (python, numpy and torch: the shuffle, mosaic and the other augmentations)
    from (seed=, epoch) alone, so that an epoch of a run resumed from last.pt, which holds no random
    state, is that epoch of the run that went through."""

    def on_train_epoch_start(trainer) -> None:
        from ultralytics.utils.torch_utils import init_seeds

        seed = int(np.random.SeedSequence([int(trainer.args.seed), trainer.epoch]).generate_state(1)[0])
        init_seeds(seed, deterministic=bool(trainer.args.deterministic))

    model.add_callback("on_train_epoch_start", on_train_epoch_start)


def add_board_resume(model) -> None:
    """ultralytics' TensorBoard writer (its callback's, in the run folder, a step per epoch), made
    fit for a resumed run: it purges what a killed attempt logged past the epoch of last.pt (the
    epoch it did not finish), so each epoch is on each curve once; and it is flushed as each epoch
    starts, so a kill loses no finished epoch's points (ultralytics leaves it to the writer's
    two-minute flush)."""
    from ultralytics.utils.callbacks import tensorboard as board

    def on_train_start(trainer) -> None:
        if getattr(board, "WRITER", None) is not None and trainer.args.resume and trainer.start_epoch:
            board.WRITER.close()
            board.WRITER = board.SummaryWriter(str(trainer.save_dir), purge_step=trainer.start_epoch + 1)

    def flush(trainer) -> None:
        if getattr(board, "WRITER", None) is not None:
            board.WRITER.flush()

    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_epoch_start", flush)
    model.add_callback("on_train_end", flush)


@contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """ultralytics' log (and with it its progress bars) down to warnings, then back as it was."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def _run_record(given: dict[str, Any], trust_checkpoint: bool) -> RunRecord:
    """run.json's record of this run; its folder comes from ultralytics (:func:`add_run_record`)."""
    resume = given.get("resume")
    resumed_from = str(resume) if resume and not isinstance(resume, bool) else None
    arguments = {**given, "trust_checkpoint": trust_checkpoint}
    return RunRecord(None, "yolo", sys.argv, arguments, Path(str(given["data"])), resumed_from)


def add_run_record(model, record: RunRecord, given: dict[str, Any]) -> None:
    """Write ``record`` into ultralytics' run folder once its trainer has made it, with every
    argument ultralytics resolved (the checkpoint arguments as the user gave them, not the checked
    private copies; resume=true: the last.pt ultralytics found)."""

    def on_pretrain_routine_start(trainer) -> None:
        resolved = vars(trainer.args)
        record.arguments.update(
            {k: v for k, v in resolved.items() if not (k in CHECKPOINT_ARGUMENTS and k in given)}
        )
        if record.resumed_from is None and resolved.get("resume"):
            record.resumed_from = str(resolved["resume"])
        record.attach(trainer.save_dir)

    model.add_callback("on_pretrain_routine_start", on_pretrain_routine_start)


def final_metrics(trainer) -> dict[str, Any]:
    """The metrics of the final validation (of best.pt; of the last epoch without one), the best
    fitness and the epochs trained."""
    out = dict(getattr(trainer, "metrics", None) or {})
    out["epochs"] = int(trainer.epoch) + 1
    if getattr(trainer, "best_fitness", None) is not None:
        out["best_fitness"] = trainer.best_fitness
    return out


def train(
    arguments: dict[str, Any],
    trust_checkpoint: bool = False,
    echo: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> Path:
    """Train; return the path of best.pt. ``trust_checkpoint``: hand the .pt files the arguments
    name to ultralytics unchecked. Otherwise ultralytics gets checked private copies, in a folder
    removed when training ends (the run's args.yaml records those copies' paths). ``echo``: where
    the lines of :func:`add_progress_lines` go (none without it); ``quiet``: ultralytics' own log
    down to warnings."""
    arguments = dict(arguments)
    model_name = str(arguments.get("model") or "")
    if not model_name:
        raise TrainingError("no --model given (e.g. yolov8n-seg.pt, or yolov8n-seg.yaml for random weights)")
    data = arguments.get("data")
    if not data:
        raise TrainingError("no --data given (the data.yaml that seg-train coco2yolo writes)")
    if not Path(str(data)).is_file():
        raise TrainingError(f"{data}: no such file; --data takes a data.yaml")
    if arguments.get("cfg"):  # ultralytics would read model=, resume=, pretrained= from it unchecked
        raise TrainingError(
            f"cfg={arguments['cfg']}: give the file as --config (the checkpoints it names are checked)"
        )
    validate_arguments(arguments)
    given = dict(arguments)  # as the user named them: run.json records these, not the private copies
    record = _run_record(given, trust_checkpoint)
    with tempfile.TemporaryDirectory(prefix="seg-train-checkpoints-") as folder, record:
        arguments = checked_checkpoints(arguments, Path(folder), trust_checkpoint)
        model = load_model(str(arguments.pop("model")), model_name)
        if model.task != "segment":
            raise TrainingError(f"{model_name} is a {model.task} model; use a -seg model")
        if echo is not None:
            add_progress_lines(model, echo)
        add_run_record(model, record, given)
        add_epoch_seeds(model)
        add_board_resume(model)
        with quiet_ultralytics() if quiet else nullcontext():
            model.train(**arguments)
        record.final_metrics.update(final_metrics(model.trainer))
    best = Path(model.trainer.best)
    if not best.is_file():
        best = Path(model.trainer.last)
    return best
