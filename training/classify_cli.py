"""``seg-train classify`` and ``seg-train wandb-pull``: train a timm image classifier, and fetch
one that a run uploaded to Weights & Biases."""

from __future__ import annotations

from pathlib import Path

import click

from store.cli_options import DATA_ROOT_OPTION, DB_OPTION


@click.command()
@click.option(
    "--cat",
    default=None,
    help="Group name: trains on <data-root>/DATA/datasets/NAME.csv "
    "(image,label[,split]; images relative to DATA/pictures).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Instead of --cat: a folder with one sub-folder of images per class.",
)
@DATA_ROOT_OPTION
@click.option(
    "--arch", default="resnet18", help="Any timm model name (resnet18, resnet10t, efficientnet_b0...)."
)
@click.option("--imgsz", type=click.IntRange(16), default=224, help="Square network input size.")
@click.option("--epochs", type=click.IntRange(1), default=20, help="Passes over the training split.")
@click.option(
    "--batch-size", "--batch_size", "batch_size", type=click.IntRange(1), default=32, help="Images per step."
)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, help="AdamW learning rate.")
@click.option(
    "--val-fraction",
    "--val_fraction",
    "val_fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    help="Share of each class held out (seeded); a split column in the CSV decides its rows.",
)
@click.option("--seed", type=int, default=0, help="Seeds the split, the initialisation and the augmentation.")
@click.option(
    "--resume",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="An earlier run to continue (same classes, arch and size) up to --epochs: its folder "
    "(DATA/models/<name>/<experiment>, continued in place; its checkpoints/last.ckpt) or a .ckpt.",
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Load --resume with the full unpickler, which runs any code the file holds. Without it, a "
    "checkpoint holding anything but tensors and plain values is refused.",
)
@click.option("--name", default=None, help="Model name [the --cat name, or the --data folder's name].")
@click.option("--experiment", default=None, help="Run name under DATA/models/<name>/ [a timestamp].")
@click.option(
    "--pretrained/--no-pretrained",
    default=True,
    help="Start from timm's pretrained weights (downloaded; offline: random weights, with a warning).",
)
@click.option("--workers", type=click.IntRange(0), default=2, help="Data-loading worker processes.")
@click.option(
    "--use-segments",
    is_flag=True,
    help="Train on the approved segments of each image (from the segment store), cropped as the "
    "server crops them, labelled with the image's label.",
)
@click.option("--segment-model", default=None, help="Whose segments [the store's only model].")
@DB_OPTION
@click.option("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu...")
@click.option(
    "--tensorboard/--no-tensorboard",
    default=True,
    help="TensorBoard event files in the run's tensorboard/: losses, accuracies, learning rate, a few "
    "validation images with their predicted labels.",
)
def classify(**kwargs) -> None:
    """Train a timm image classifier (PyTorch Lightning) for build-repo --model classifier.

    Writes <data-root>/DATA/models/<name>/<experiment>/: checkpoints/{best,last}.ckpt, csv_logs/,
    tensorboard/ (not with --no-tensorboard), torchscripts/model.pt, onnx/model.onnx,
    train_batches/*.png and split.csv. The checkpoint records the class names and the
    preprocessing, and loads with weights_only=True.
    Images on the segment store's badlist now (the store of --db) are left out, whatever the CSV lists.
    Weights & Biases logs only when WANDB_API_KEY is set.
    """
    import logging

    from training.classify_train import ClassifyOptions, train_classifier

    logging.basicConfig(level=logging.INFO, format="seg-train: %(message)s")
    if kwargs["resume"] is not None and kwargs["resume"].is_dir():
        kwargs["resume"], experiment = _last_checkpoint(kwargs["resume"])
        kwargs["experiment"] = kwargs["experiment"] or experiment
    result = train_classifier(ClassifyOptions(**kwargs))
    acc = f" (val acc {result.best_val_acc:.4f})" if result.best_val_acc is not None else ""
    click.echo(f"\nBest checkpoint: {result.best}{acc}")
    click.echo(f"Last checkpoint: {result.last}")
    click.echo(f"TorchScript: {result.torchscript}\nONNX: {result.onnx}")
    name = result.run_dir.parent.name
    click.echo(f"Serve it:\n  build-repo --model classifier --weights {result.best} --name {name}")


def _last_checkpoint(run: Path) -> tuple[Path, str]:
    """A run folder's (or its checkpoints folder's) last.ckpt, and the run's experiment name."""
    run = run.resolve()
    run = run.parent if run.name == "checkpoints" else run
    checkpoint = run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise click.BadParameter(f"{run}: no checkpoints/last.ckpt to resume", param_hint="--resume")
    return checkpoint, run.name


@click.command("wandb-pull")
@click.option(
    "--artifact",
    required=True,
    help="ENTITY/PROJECT/NAME:VERSION, e.g. me/segstack-classify/model-1a2b3c:best (or :v3, :latest).",
)
@DATA_ROOT_OPTION
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to download [<data-root>/DATA/models/wandb/<name>_<version>/].",
)
@click.option("--timeout", type=click.IntRange(1), default=10, help="Seconds to wait for the W&B server.")
def wandb_pull(artifact, data_root, out, timeout) -> None:
    """Download a W&B model artifact (a checkpoint seg-train classify uploaded); needs WANDB_API_KEY."""
    from training.wandb_pull import build_repo_command, pull_artifact

    result = pull_artifact(artifact, data_root, out, timeout)
    click.echo(f"Downloaded {artifact} → {result.folder}")
    for line in result.skipped:
        click.echo(f"seg-train: warning: {line}; skipped", err=True)
    command = build_repo_command(result)
    if command is None:
        # the download worked but gives nothing to serve: a failed run (1), not a user error (2)
        click.echo("seg-train: warning: no seg-train classify checkpoint (.ckpt) in the artifact", err=True)
        raise SystemExit(1)
    for path in result.checkpoints:
        click.echo(f"Checkpoint: {path}")
    click.echo(f"Serve it:\n  {command}")
