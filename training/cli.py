"""``seg-train``: dataset converters and training entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from store.layout import DB_URL_HELP

# what `pip install 'segstack[train]'` brings; the builder, the server and the clients do without
TRAIN_EXTRA = {"lightning", "wandb", "tensorboard", "albumentations", "pytorch_lightning", "lightning_fabric"}


class _TrainingCommands(click.Group):
    """A command that needs the ``train`` extra says so in one line when it is not installed."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
                raise
            click.echo(
                f"seg-train: error: {exc.name} is not installed: "
                "training needs pip install 'segstack[train]'",
                err=True,
            )
            sys.exit(2)


@click.group(
    cls=_TrainingCommands, context_settings={"help_option_names": ["-h", "--help"], "show_default": True}
)
def main() -> None:
    """Convert datasets and train segmentation and classification models."""


@main.command()
@click.option(
    "--src-dir",
    "--src_dir",
    "src_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of COCO exports: each sub-folder with images/ and annotations/*.json is a dataset.",
)
@click.option(
    "--dst-dir",
    "--dst_dir",
    "dst_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the YOLO-seg dataset: a new or empty folder, or a previous output of "
    "coco2yolo (replaced whole). Any other folder is refused, never deleted.",
)
@click.option(
    "--classes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Text file, one class name per line: fixes the class order (others are skipped).",
)
@click.option("--val-fraction", "--val_fraction", type=float, default=0.2, help="Share of images in val.")
@click.option("--seed", type=int, default=0, help="Seed of the deterministic train/val split.")
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
def coco2yolo(src_dir, dst_dir, classes, val_fraction, seed, copy) -> None:
    """Convert and merge COCO datasets (CVAT "COCO 1.0" exports) into one YOLO-seg dataset.

    Categories are unified by name across datasets. Polygons, multi-polygon instances and RLE
    (compressed or not, crowd regions too) all convert. Prints images and instances per class and
    split, and every skipped annotation with its reason; writes dst/data.yaml for training.
    """
    from training.coco2yolo import DatasetError, convert
    from training.output_dir import OutputFolderError

    try:
        report = convert(
            src_dir,
            dst_dir,
            classes,
            val_fraction,
            seed,
            copy,
            progress=lambda xs: tqdm(xs, desc="coco2yolo", unit="img", file=sys.stderr),
        )
    except (DatasetError, OutputFolderError) as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    click.echo(report.format())
    click.echo(
        f"\nWrote {dst_dir / 'data.yaml'}. Train: seg-train yolo --data {dst_dir / 'data.yaml'} "
        "--model yolov8n-seg.pt"
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": False})
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
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
def yolo(data, model, epochs, batch, imgsz, device, config_file, trust_checkpoint, quiet, overrides) -> None:
    """Train YOLOv8-seg with ultralytics. Any ultralytics train argument may follow as KEY=VALUE.

    Precedence: --config file < the options above < KEY=VALUE. TensorBoard logs go to the run
    folder (tensorboard --logdir runs/segment); Weights & Biases logs only when WANDB_API_KEY is set
    and WANDB_MODE is not disabled.

    Prints one line per epoch on stderr (mean training losses, seconds, and the mAPs of the epochs
    that were validated), also when ultralytics' own log is off (YOLO_VERBOSE=False); --quiet
    silences it.

    \b
    Example:
      seg-train yolo --data dataset/data.yaml --model yolov8x-seg.pt --epochs 100 --batch-size 16 \\
          optimizer=AdamW lr0=0.002 cos_lr=true
    """
    from training.yolo_train import TrainingError, configure_loggers, load_config, parse_overrides, train

    try:
        args = load_config(config_file) if config_file else {}
        named = {
            "data": str(data) if data else None,
            "model": model,
            "epochs": epochs,
            "batch": batch,
            "imgsz": imgsz,
            "device": device,
        }
        args.update({k: v for k, v in named.items() if v is not None})
        args.update(parse_overrides(list(overrides)))
        loggers = configure_loggers()
        if not quiet:
            click.echo(f"seg-train: {loggers}", err=True)
        if trust_checkpoint:
            warning = ".pt files loaded unchecked (--trust-checkpoint): code in them runs"
            click.echo(f"seg-train: warning: {warning}", err=True)
        echo = None if quiet else (lambda line: click.echo(line, err=True))
        best = train(args, trust_checkpoint, echo=echo, quiet=quiet)
    except TrainingError as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"\nBest checkpoint: {best}")
    click.echo(
        f"Serve it:\n  build-repo --model yolov8n-seg --weights {best}\n"
        "  seg-serve --model-repository model_repository"
    )


@main.command()
@click.option(
    "--src-dir",
    "--src_dir",
    "src_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with LabelMe .json files (searched recursively) and their images.",
)
@click.option(
    "--dst-dir",
    "--dst_dir",
    "dst_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output: images/, indexes/<stem>.png, indexes/<stem>_color_mask.png, classes.txt, colors.csv. "
    "A new or empty folder, or a previous output of labelme (replaced whole); any other is refused.",
)
@click.option(
    "--classes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="One class per line, background first (LabelMe's labels.txt works). Default: labels found.",
)
@click.option(
    "--colors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="colors.csv (name,r,g,b per class). Default: the PASCAL VOC palette.",
)
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
def labelme(src_dir, dst_dir, classes, colors, copy) -> None:
    """Convert LabelMe annotations into class-index masks (and colour masks) for semantic training."""
    from training.labelme import LabelMeError, convert_labelme
    from training.output_dir import OutputFolderError

    try:
        report, names = convert_labelme(
            src_dir,
            dst_dir,
            classes,
            colors,
            copy,
            progress=lambda xs: tqdm(xs, desc="labelme", unit="img", file=sys.stderr),
        )
    except (LabelMeError, OutputFolderError) as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    click.echo(report.format(names))
    click.echo(f"classes: {', '.join(names)} → {dst_dir}")
    if report.failed:
        sys.exit(1)


@main.command()
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
def semantic(**kwargs) -> None:
    """Train a segmentation-models-pytorch model (seed 001's train.py flags).

    TensorBoard logs go to <output-dir>/<model-name>/tensorboard. The checkpoint records what
    build-repo needs (architecture, encoder, classes, colours, input size, normalisation) and loads
    with torch.load(weights_only=True).
    """
    import logging

    from training.semantic_data import DataError
    from training.semantic_train import SemanticTrainOptions, train_semantic

    logging.basicConfig(level=logging.INFO, format="seg-train: %(message)s")
    try:
        best = train_semantic(
            SemanticTrainOptions(**kwargs),
            progress=lambda it, desc="": tqdm(it, desc=desc, unit="batch", leave=False, file=sys.stderr),
        )
    except DataError as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"\nBest checkpoint: {best}")
    click.echo(f"Serve it:\n  build-repo --model smp --weights {best} --name {kwargs['model_name']}")


@main.command("color-mask")
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
    from model_checkpoints.smp import CheckpointError
    from training.semantic_data import DataError
    from training.semantic_predict import color_masks

    try:
        written, failed = color_masks(
            images_path,
            checkpoint,
            output_dir,
            size,
            colors,
            progress=lambda xs: tqdm(xs, desc="color-mask", unit="img", file=sys.stderr),
        )
    except (DataError, CheckpointError) as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    for path, why in failed.items():
        click.echo(f"failed: {path}: {why}", err=True)
    click.echo(f"{written} colour masks and overlays → {output_dir}")
    if failed:
        sys.exit(1)


@main.command()
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
@click.option(
    "--data-root",
    "--data_root",
    "data_root",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="Root of the DATA/ layout: DATA/datasets, DATA/pictures, and DATA/models for the outputs.",
)
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
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A .ckpt of an earlier run to continue (same classes, arch and size) up to --epochs.",
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
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help=DB_URL_HELP + " Images on its badlist now are left out, whatever the CSV lists.",
)
@click.option("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu...")
def classify(**kwargs) -> None:
    """Train a timm image classifier (PyTorch Lightning) for build-repo --model classifier.

    Writes <data-root>/DATA/models/<name>/<experiment>/: checkpoints/{best,last}.ckpt, csv_logs/,
    tensorboard/, torchscripts/model.pt, onnx/model.onnx, train_batches/*.png and split.csv. The
    checkpoint records the class names and the preprocessing, and loads with weights_only=True.
    Weights & Biases logs only when WANDB_API_KEY is set.
    """
    import logging

    from training.classify_train import ClassifyOptions, TrainingError, train_classifier

    logging.basicConfig(level=logging.INFO, format="seg-train: %(message)s")
    try:
        result = train_classifier(ClassifyOptions(**kwargs))
    except TrainingError as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    acc = f" (val acc {result.best_val_acc:.4f})" if result.best_val_acc is not None else ""
    click.echo(f"\nBest checkpoint: {result.best}{acc}")
    click.echo(f"Last checkpoint: {result.last}")
    click.echo(f"TorchScript: {result.torchscript}\nONNX: {result.onnx}")
    name = result.run_dir.parent.name
    click.echo(f"Serve it:\n  build-repo --model classifier --weights {result.best} --name {name}")


@main.command("wandb-pull")
@click.option(
    "--artifact",
    required=True,
    help="ENTITY/PROJECT/NAME:VERSION, e.g. me/segstack-classify/model-1a2b3c:best (or :v3, :latest).",
)
@click.option("--data-root", "--data_root", "data_root", type=click.Path(path_type=Path), default=Path("."))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to download [<data-root>/DATA/models/wandb/<name>_<version>/].",
)
@click.option("--timeout", type=click.IntRange(1), default=10, help="Seconds to wait for the W&B server.")
def wandb_pull(artifact, data_root, out, timeout) -> None:
    """Download a W&B model artifact (a checkpoint seg-train classify uploaded); needs WANDB_API_KEY."""
    from training.wandb_pull import PullError, build_repo_command, pull_artifact

    try:
        result = pull_artifact(artifact, data_root, out, timeout)
    except PullError as exc:
        click.echo(f"seg-train: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"Downloaded {artifact} → {result.folder}")
    for line in result.skipped:
        click.echo(f"seg-train: warning: {line}; skipped", err=True)
    command = build_repo_command(result)
    if command is None:
        click.echo("seg-train: warning: no seg-train classify checkpoint (.ckpt) in the artifact", err=True)
        sys.exit(1)
    for path in result.checkpoints:
        click.echo(f"Checkpoint: {path}")
    click.echo(f"Serve it:\n  {command}")
