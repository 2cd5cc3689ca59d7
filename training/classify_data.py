"""The images `seg-train classify` trains on: where they come from (a group's CSV, class folders, or
the approved segments of the segment store), the seeded stratified split, and the dataset that
turns one into the network's input.

Evaluation input is exactly what the server computes: the file decoded by OpenCV as BGR
(:func:`segops.decode.decode_image`), the segment cropped by :func:`segops.segment_crop.crop_segment`
when training on segments, then :func:`segops.resize.prepare` with the checkpoint's
:class:`~segcontract.model_metadata.InputSpec`. Training augments the BGR pixels (flip, a mild
crop, small brightness/contrast/saturation changes) and then runs the same ``prepare``.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from segcontract.checkpoint_formats import ClassifierModelInfo
from segcontract.errors import SegstackError
from segcontract.files import file_sha256
from segcontract.image_files import image_paths, is_image_name
from segcontract.model_metadata import InputSpec
from segops.decode import ImageDecodeError, decode_image
from segops.resize import prepare
from segops.segment_crop import crop_segment
from store.layout import CSV_LABEL_COLUMNS, CSV_PATH_COLUMNS, CSV_SPLIT_COLUMN, csv_column
from training.splits import val_indices

log = logging.getLogger("seg-train")

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
LEFT_OUT_SPLITS = {"test", "holdout"}  # rows kept for a later evaluation: never trained on


class DataError(SegstackError):
    """The training data cannot be used as given: one line naming the file and the fix."""


@dataclass(frozen=True)
class Sample:
    """One training example: a whole image, or one segment of it (``bbox`` and ``rle_counts``)."""

    path: Path
    label: str
    key: str  # the image's name: the split key, so every crop of one image is on one side
    split: str | None = None  # "train"/"val" from a split column; None: the seeded split decides
    bbox: tuple[float, float, float, float] | None = None
    rle_counts: str | None = None
    mask_size: tuple[int, int] | None = None  # (height, width) the RLE is at


@dataclass
class ReadReport:
    """What was left out while reading, for one summary line each."""

    unlabelled: int = 0
    left_out_split: int = 0
    stray_files: int = 0
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    without_segments: int = 0
    size_mismatch: int = 0
    changed_pictures: int = 0
    badlisted: int = 0  # on the segment store's badlist now
    segment_model: str | None = None  # whose segments were used (--segment-model, or the only one)

    def lines(self) -> list[str]:
        out = []
        if self.unlabelled:
            out.append(f"{self.unlabelled} rows without a label skipped")
        if self.left_out_split:
            out.append(f"{self.left_out_split} rows of a test/holdout split left out")
        if self.badlisted:
            out.append(f"{self.badlisted} badlisted images left out")
        if self.stray_files:
            out.append(f"{self.stray_files} images outside the class folders ignored")
        if self.unreadable:
            path, why = self.unreadable[0]
            more = f" (and {len(self.unreadable) - 1} more)" if len(self.unreadable) > 1 else ""
            out.append(f"{len(self.unreadable)} unreadable images skipped: {path}: {why}{more}")
        if self.without_segments:
            out.append(f"{self.without_segments} images have no approved segment")
        if self.size_mismatch:
            out.append(
                f"{self.size_mismatch} segments skipped: their mask is not at the picture's size "
                "(the picture was replaced; segment it again)"
            )
        if self.changed_pictures:
            out.append(
                f"{self.changed_pictures} images skipped: the picture changed since it was segmented "
                "(segment it again: seg-client segments build --process-all)"
            )
        return out


# --- where the images come from ----------------------------------------------------------------


def _cell(row: list[str], column: int | None) -> str:
    return row[column].strip() if column is not None and column < len(row) else ""


def read_csv_samples(csv_path: Path, pictures: Path, report: ReadReport) -> list[Sample]:
    """Rows of a group CSV (``image,label[,split]``, as ``seg-client groups pull`` writes it);
    image paths are relative to ``pictures`` unless absolute."""
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path}: no such file; pull the group first (seg-client groups pull) or use --data"
        )
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot be read ({exc})") from None
    if not rows:
        raise DataError(f"{csv_path}: empty; expected a header row image,label")
    header = [h.strip().lower() for h in rows[0]]
    image_col = csv_column(header, CSV_PATH_COLUMNS)
    label_col = csv_column(header, CSV_LABEL_COLUMNS)
    if image_col is None:
        raise DataError(f"{csv_path}: no image column (header {','.join(header)}); expected image,label")
    if label_col is None:
        raise DataError(f"{csv_path}: no label column (header {','.join(header)}); expected image,label")
    split_col = csv_column(header, (CSV_SPLIT_COLUMN,))
    samples = []
    for number, row in enumerate(rows[1:], start=2):
        image, label, split = (_cell(row, i) for i in (image_col, label_col, split_col))
        split = split.lower()
        if not image:
            continue
        if not label:
            report.unlabelled += 1
            continue
        if split in LEFT_OUT_SPLITS:
            report.left_out_split += 1
            continue
        if split and split not in SPLIT_NAMES:
            raise DataError(
                f"{csv_path}:{number}: split {split!r}; use train, val or test (or leave it empty)"
            )
        path = Path(image) if Path(image).is_absolute() else pictures / image
        key = image.replace("\\", "/")
        samples.append(Sample(path, label, key, SPLIT_NAMES.get(split)))
    return samples


def read_folder_samples(folder: Path, report: ReadReport) -> list[Sample]:
    """Images below each sub-folder of ``folder``; the sub-folder's name is the label."""
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder; expected one sub-folder of images per class")
    samples = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found = image_paths(child)
            if not found:
                log.warning("%s: no images; not a class", child)
            samples.extend(Sample(p, child.name, p.relative_to(folder).as_posix()) for p in found)
        elif is_image_name(child):
            report.stray_files += 1
    return samples


def check_readable(
    samples: list[Sample], report: ReadReport, workers: int = 8
) -> tuple[list[Sample], dict[Path, tuple[int, int]]]:
    """Decode every image once (as training will), keep the samples whose image decodes, and return
    the (height, width) of each kept image. An unreadable image is skipped, not fatal."""
    paths = sorted({s.path for s in samples})

    def size_of(path: Path) -> tuple[int, int] | str:
        try:
            image = decode_image(path.read_bytes())
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        except ImageDecodeError as exc:
            return str(exc)
        return image.shape[:2]

    with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV decodes without the GIL
        results = dict(zip(paths, pool.map(size_of, paths)))
    sizes = {p: r for p, r in results.items() if not isinstance(r, str)}
    report.unreadable.extend((p, r) for p, r in results.items() if isinstance(r, str))
    return [s for s in samples if s.path in sizes], sizes


def store_names(sample: Sample, pictures: Path) -> list[str]:
    """The names the segment store may know ``sample``'s image by: its path relative to
    DATA/pictures (POSIX), else its absolute path."""
    names = []
    for base in (pictures, pictures.resolve()):
        for path in (sample.path, sample.path.resolve()):
            if path.is_relative_to(base):
                names.append(path.relative_to(base).as_posix())
    names += [sample.path.as_posix(), sample.path.resolve().as_posix()]
    return list(dict.fromkeys(names))


def segment_samples(
    images: list[Sample],
    segments: Iterable,
    sizes: dict[Path, tuple[int, int]],
    pictures: Path,
    report: ReadReport,
    picture_sha256: dict[str, str] | None = None,
) -> list[Sample]:
    """One sample per stored segment of each image, labelled with the image's label. ``segments``
    are :class:`store.records.StoredSegment` records (approved, of one model, badlisted images
    already left out by the store); ``picture_sha256``: the store's sha256 of each picture, so
    that a file replaced since it was segmented is not trained on with the old picture's masks."""
    by_name: dict[str, list] = defaultdict(list)
    for seg in segments:
        by_name[seg.image].append(seg)
    out = []
    for image in images:
        name = next((n for n in store_names(image, pictures) if n in by_name), None)
        found = by_name[name] if name is not None else []
        if not found:
            report.without_segments += 1
        elif picture_sha256 and picture_sha256.get(name) not in (None, file_sha256(image.path)):
            report.changed_pictures += 1
            continue
        for seg in found:
            mask_size = tuple(int(v) for v in seg.rle.get("size", (seg.height, seg.width)))
            if mask_size != sizes[image.path]:
                report.size_mismatch += 1
                continue
            out.append(
                replace(
                    image,
                    bbox=tuple(float(v) for v in seg.bbox),
                    rle_counts=seg.rle["counts"],
                    mask_size=mask_size,
                )
            )
    return out


# --- classes and the split ---------------------------------------------------------------------


def class_names_of(samples: Sequence[Sample]) -> list[str]:
    """Class names in index order: sorted alphabetically."""
    return sorted({s.label for s in samples})


def split_samples(
    samples: Sequence[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, val). A sample's ``split`` decides where given; the others are split per class by
    :func:`training.splits.val_indices` over their image keys, so the split is stratified, seeded,
    and every crop of one image lands on the same side."""
    train = [s for s in samples if s.split == "train"]
    val = [s for s in samples if s.split == "val"]
    free: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.split is None:
            free[s.label].append(s)
    for label in sorted(free):
        keys = sorted({s.key for s in free[label]})
        chosen = {keys[i] for i in val_indices(keys, val_fraction, seed)}
        for s in free[label]:
            (val if s.key in chosen else train).append(s)
    return train, val


def counts_line(samples: Sequence[Sample], class_names: Sequence[str]) -> str:
    counts = Counter(s.label for s in samples)
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in class_names)


# --- pixels ------------------------------------------------------------------------------------


def input_spec(info: ClassifierModelInfo) -> InputSpec:
    """The eval preprocessing a checkpoint records, as segops applies it (input_size is W, H)."""
    width, height = info.input_size
    return InputSpec(height, width, info.resize, tuple(info.mean), tuple(info.std), "CHW")


def load_pixels(sample: Sample, info: ClassifierModelInfo) -> np.ndarray:
    """The sample's BGR pixels as the server sees them: the decoded file, or the segment's crop."""
    image = decode_image(sample.path.read_bytes())
    if sample.bbox is None:
        return image
    return crop_segment(
        image, sample.bbox, sample.rle_counts, margin=info.segment_margin, mean_rgb=tuple(info.mean)
    )


def eval_input(image_bgr: np.ndarray, info: ClassifierModelInfo) -> np.ndarray:
    """CHW float32: exactly the server's preprocessing."""
    return prepare(image_bgr, input_spec(info))


def augment(image_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training-only changes of the BGR pixels before the eval preprocessing: a horizontal flip, a
    crop keeping 80-100 % of each side, and small brightness, contrast and saturation changes."""
    image = image_bgr
    if rng.random() < 0.5:
        image = image[:, ::-1]
    h, w = image.shape[:2]
    keep_h, keep_w = (max(1, round(n * rng.uniform(0.8, 1.0))) for n in (h, w))
    top, left = int(rng.integers(0, h - keep_h + 1)), int(rng.integers(0, w - keep_w + 1))
    image = np.ascontiguousarray(image[top : top + keep_h, left : left + keep_w])
    x = image.astype(np.float32)
    if rng.random() < 0.8:
        gray = x.mean(axis=2, keepdims=True)
        x = gray + (x - gray) * rng.uniform(0.8, 1.2)  # saturation
        x = (x - x.mean()) * rng.uniform(0.8, 1.2) + x.mean()  # contrast
        x = x + rng.uniform(-20, 20)  # brightness
    return np.clip(x, 0, 255).astype(np.uint8)


class ClassifyDataset(Dataset):
    """(CHW float32 tensor, class index) per sample; augmented when ``train``."""

    def __init__(self, samples: Sequence[Sample], info: ClassifierModelInfo, train: bool) -> None:
        self.samples = list(samples)
        self.info = info
        self.train = train
        self.index = {name: i for i, name in enumerate(info.class_names)}

    def __len__(self) -> int:
        return len(self.samples)

    def pixels(self, i: int) -> np.ndarray:
        """Sample ``i``'s BGR pixels before any resize (augmented in training)."""
        image = load_pixels(self.samples[i], self.info)
        if self.train:
            # torch's generator: seeded by Lightning (seed_everything, per worker), so runs repeat
            image = augment(image, np.random.default_rng(int(torch.randint(0, 2**62, ()).item())))
        return image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[i]
        try:
            pixels = self.pixels(i)
        except (OSError, ImageDecodeError) as exc:  # read at the start; changed since
            raise DataError(f"{sample.path}: cannot be read any more ({exc})") from None
        return torch.from_numpy(eval_input(pixels, self.info)), self.index[sample.label]


def batch_grid(
    images: torch.Tensor, labels: Sequence[int], info: ClassifierModelInfo, columns: int = 8
) -> np.ndarray:
    """A BGR uint8 grid of prepared (normalised CHW) images with their class names, to look at."""
    mean = np.asarray(info.mean, np.float32)[:, None, None]
    std = np.asarray(info.std, np.float32)[:, None, None]
    tiles = []
    for x, label in zip(images.numpy(), labels):
        rgb = np.clip((x * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        tile = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (128, 128), interpolation=cv2.INTER_NEAREST)
        tile = cv2.copyMakeBorder(tile, 0, 20, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(
            tile, info.class_names[int(label)][:18], (3, 143), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
        )
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    while len(tiles) % columns and len(tiles) > columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)
