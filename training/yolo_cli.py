"""``seg-train yolo``: train YOLOv8-seg with ultralytics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def train_arguments(
    config_file: Path | None, named: dict[str, Any], overrides: tuple[str, ...]
) -> dict[str, Any]:
    """Ultralytics' train arguments: the --config file, then the options given (``named``, None
    where not given), then KEY=VALUE ``overrides``, each over the one before."""
    from training.yolo_train import load_config, parse_overrides

    args = load_config(config_file) if config_file else {}
    args.update({k: v for k, v in named.items() if v is not None})
    args.update(parse_overrides(list(overrides)))
    return args


def last_checkpoint(path: Path) -> Path:
    """--resume's checkpoint: the file itself, or a run folder's weights/last.pt."""
    checkpoint = path / "weights" / "last.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        what = f"{path} has no weights/last.pt" if path.is_dir() else f"{path} does not exist"
        raise click.BadParameter(f"{what}: nothing to resume", param_hint="--resume")
    return checkpoint


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": False})
@click.option(
    "--data", type=click.Path(path_type=Path), default=None, help="data.yaml (from seg-train coco2yolo)."
)
@click.option(
    "--model",
    default=None,
    help="yolov8{n,s,m,l,x}-seg.pt (pretrained, downloaded), a local .pt, or a .yaml (random init).",
)
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs [ultralytics default 100].")
@click.option(
    "--batch-size",
    "--batch_size",
    "--batch",
    "batch",
    type=int,
    default=None,
    help="Batch size [ultralytics default 16; -1 = auto].",
)
@click.option(
    "--imgsz", type=click.IntRange(32), default=None, help="Training image size [ultralytics default 640]."
)
@click.option("--device", default=None, help="cpu, 0, 0,1 ... [ultralytics picks].")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML of training arguments shaped like seed 002's CONFIG (model, data, epochs, lr0, ...).",
)
@click.option(
    "--resume",
    "resume_run",
    type=click.Path(path_type=Path),
    default=None,
    help="Resume a run killed or stopped before its --epochs: its folder (runs/segment/train...) or "
    "its weights/last.pt; ultralytics goes on in that folder, from the epoch after last.pt's "
    "(same as resume=<last.pt>).",
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Let ultralytics load the .pt files --model and model=, resume=, pretrained= name without "
    "checking them first; its full unpickler runs any code a file holds. Without it, each is checked "
    "(a .pt naming anything but genuine model classes is refused) and ultralytics gets the checked copy.",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Only warnings, errors and the result: no line per epoch, and ultralytics' own log and "
    "progress bars off.",
)
@click.option(
    "--tensorboard/--no-tensorboard",
    default=True,
    help="TensorBoard event files in the run folder (ultralytics' callback: losses, mAPs, learning "
    "rates, the graph); ultralytics' own settings are left as they were.",
)
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def yolo(
    data,
    model,
    epochs,
    batch,
    imgsz,
    device,
    config_file,
    resume_run,
    trust_checkpoint,
    quiet,
    tensorboard,
    overrides,
) -> None:
    """Train YOLOv8-seg with ultralytics. Any ultralytics train argument may follow as KEY=VALUE.

    Precedence: --config file < the options above < KEY=VALUE. TensorBoard logs go to the run
    folder (look with seg-train tensorboard runs/segment; --no-tensorboard: none); Weights & Biases
    logs only when WANDB_API_KEY is set and WANDB_MODE is not disabled.

    Prints one line per epoch on stderr (mean training losses, seconds, and the mAPs of the epochs
    that were validated), also when ultralytics' own log is off (YOLO_VERBOSE=False); --quiet
    silences it.

    \b
    Example:
      seg-train yolo --data dataset/data.yaml --model yolov8x-seg.pt --epochs 100 --batch-size 16 \\
          optimizer=AdamW lr0=0.002 cos_lr=true
    """
    from training.yolo_train import run_loggers, train

    given = {"model": model, "epochs": epochs, "batch": batch, "imgsz": imgsz, "device": device}
    named = {"data": str(data) if data else None, **given}
    args = train_arguments(config_file, named, overrides)
    if resume_run is not None:
        args["resume"] = str(last_checkpoint(resume_run))
        args.setdefault("model", args["resume"])  # ultralytics takes the model from the checkpoint
    with run_loggers(tensorboard) as loggers:
        if not quiet:
            click.echo(f"seg-train: {loggers}", err=True)
        if trust_checkpoint:
            warning = ".pt files loaded unchecked (--trust-checkpoint): code in them runs"
            click.echo(f"seg-train: warning: {warning}", err=True)
        echo = None if quiet else (lambda line: click.echo(line, err=True))
        best = train(args, trust_checkpoint, echo=echo, quiet=quiet)
    click.echo(f"\nBest checkpoint: {best}")
    click.echo(
        f"Serve it:\n  build-repo --model yolov8n-seg --weights {best}\n"
        "  seg-serve --model-repository model_repository"
    )
