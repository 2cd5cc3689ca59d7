"""``seg-train semantic`` and ``seg-train color-mask``: train a segmentation-models-pytorch model,
and look at what a checkpoint predicts."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm


@click.command()
@click.option(
    "--data-root",
    "--data_root",
    "data_root",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset: images/ and indexes/<stem>.png or indexes/<stem>_color_mask.png.",
)
@click.option(
    "--num-classes",
    "--num_classes",
    "num_classes",
    required=True,
    type=click.IntRange(2),
    help="Number of classes, background included.",
)
@click.option(
    "--model-name",
    "--model_name",
    "model_name",
    required=True,
    help="Run name: checkpoints go to <output-dir>/<model-name>/{best,last}.pth.",
)
@click.option(
    "--resume",
    "--resume-from",
    "--resume_from",
    "resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Resume a run: its folder (<output-dir>/<model-name>) or its last.pth. The epoch count, "
    "metrics.csv and the TensorBoard curves go on from its last checkpoint. It must exist.",
)
@click.option(
    "--model",
    "resume_from",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint to resume from; if the file does not exist, a warning and training from scratch.",
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Load --model with the full unpickler, which runs any code the file holds. Without it, a "
    "checkpoint holding anything but tensors and plain values is refused.",
)
@click.option(
    "--arch",
    default="Unet",
    help="Any segmentation-models-pytorch architecture (Unet, FPN, DeepLabV3Plus...).",
)
@click.option("--backend", "encoder", default="efficientnet-b0", help="Encoder (any smp encoder name).")
@click.option("--epochs", type=click.IntRange(1), default=50)
@click.option("--batch-size", "--batch_size", "batch_size", type=click.IntRange(1), default=8)
@click.option(
    "--size",
    type=(click.IntRange(32), click.IntRange(32)),
    default=(640, 320),
    metavar="W H",
    help="Training input width and height (multiples of 32 for most encoders).",
)
@click.option("--use-mixup", "--use_mixup", "use_mixup", is_flag=True, help="Mix-up augmentation.")
@click.option("--mode", default="seg", help="Training mode; only seg is supported.")
@click.option(
    "--colors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="colors.csv (name,r,g,b per class). Default: <data-root>/colors.csv if present.",
)
@click.option("--lr", type=float, default=1e-3, help="AdamW learning rate.")
@click.option("--val-fraction", type=float, default=0.2, help="Share of images held out for validation mIoU.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("runs/semantic"))
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [cuda if available].")
@click.option("--workers", type=click.IntRange(0), default=2, help="Data-loading worker processes.")
@click.option(
    "--tensorboard/--no-tensorboard",
    default=True,
    help="TensorBoard event files in <output-dir>/<model-name>/tensorboard: losses, mIoU and IoU per "
    "class, learning rate, a few validation images with their predicted masks.",
)
def semantic(**kwargs) -> None:
    """Train a segmentation-models-pytorch model (seed 001's train.py flags).

    Each epoch goes to <output-dir>/<model-name>/metrics.csv and, unless --no-tensorboard, to
    TensorBoard in <output-dir>/<model-name>/tensorboard (seg-train tensorboard <output-dir> shows
    them). The checkpoint records what
    build-repo needs (architecture, encoder, classes, colours, input size, normalisation) and loads
    with torch.load(weights_only=True).
    """
    import logging

    from training.semantic_train import SemanticTrainOptions, train_semantic

    logging.basicConfig(level=logging.INFO, format="seg-train: %(message)s")
    resume = kwargs.pop("resume")
    if resume is not None:
        if kwargs["resume_from"] is not None:
            raise click.UsageError("--resume and --model both name a checkpoint: give one")
        kwargs["resume_from"] = _last_checkpoint(resume)
    best = train_semantic(
        SemanticTrainOptions(**kwargs),
        progress=lambda it, desc="": tqdm(it, desc=desc, unit="batch", leave=False, file=sys.stderr),
    )
    click.echo(f"\nBest checkpoint: {best}")
    click.echo(f"Serve it:\n  build-repo --model smp --weights {best} --name {kwargs['model_name']}")


def _last_checkpoint(path: Path) -> Path:
    """--resume's checkpoint: the file itself, or a run folder's last.pth."""
    checkpoint = path / "last.pth" if path.is_dir() else path
    if not checkpoint.is_file():
        what = f"{path} has no last.pth" if path.is_dir() else f"{path} does not exist"
        raise click.BadParameter(f"{what}: nothing to resume", param_hint="--resume")
    return checkpoint


@click.command("color-mask")
@click.option(
    "--images-path",
    "--images_path",
    "images_path",
    required=True,
    type=click.Path(path_type=Path),
    help="An image or a folder of images.",
)
@click.option(
    "--model-name",
    "--model_name",
    "checkpoint",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The .pth checkpoint.",
)
@click.option("--output-dir", "--output_dir", "output_dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--size",
    type=(click.IntRange(32), click.IntRange(32)),
    default=None,
    metavar="W H",
    help="Network input width and height. Default: the checkpoint's.",
)
@click.option(
    "--colors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="colors.csv. Default: the colours the checkpoint records.",
)
@click.option(
    "--num-classes",
    "--num_classes",
    "num_classes",
    type=int,
    default=None,
    help="Accepted for the seed's command lines; the checkpoint records the class count.",
)
def color_mask(images_path, checkpoint, output_dir, size, colors, num_classes) -> None:
    """Colour visualisations of a checkpoint's predictions (seed 001's color_mask.py)."""
    from training.semantic_predict import color_masks

    written, failed = color_masks(
        images_path,
        checkpoint,
        output_dir,
        size,
        colors,
        progress=lambda xs: tqdm(xs, desc="color-mask", unit="img", file=sys.stderr),
    )
    for path, why in failed.items():
        click.echo(f"failed: {path}: {why}", err=True)
    click.echo(f"{written} colour masks and overlays → {output_dir}")
    if failed:  # the others were written: the work partly failed (1), not the user (2)
        raise SystemExit(1)
