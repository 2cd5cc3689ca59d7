"""Semantic-segmentation data in seed 001's layout: ``images/`` and ``indexes/``.

Per image ``images/<stem>.<ext>``, the mask is ``indexes/<stem>.png`` (class index per pixel) or
``indexes/<stem>_color_mask.png`` (colours, mapped to indices through the colour table; a colour
not in it becomes 255, ignored by the loss and the metric). The colour table is a colors.csv
(``name,r,g,b`` per class, in class order), as `seg-train labelme` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from segcontract.errors import SegstackError
from segcontract.image_files import IMAGE_SUFFIXES
from segcontract.masks import IGNORE_INDEX
from training.colors import ColorTableError, read_colors_csv, voc_palette
from training.splits import val_indices


class DataError(SegstackError):
    """A problem with the dataset the user must fix: one line naming the file."""


@dataclass
class ClassTable:
    names: list[str]
    colors: list[list[int]]  # RGB


def read_class_table(colors_csv: Path | None, num_classes: int) -> ClassTable:
    if colors_csv is None:
        return ClassTable(
            [f"class_{i}" for i in range(num_classes)], [list(c) for c in voc_palette(num_classes)]
        )
    try:
        table = read_colors_csv(colors_csv)
    except ColorTableError as exc:
        raise DataError(str(exc)) from None
    if len(table) != num_classes:
        raise DataError(f"{colors_csv}: {len(table)} classes, but --num-classes is {num_classes}")
    return ClassTable(
        [name or f"class_{i}" for i, (name, _) in enumerate(table)], [list(rgb) for _, rgb in table]
    )


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    is_color: bool


def find_samples(root: Path) -> list[Sample]:
    images_dir, masks_dir = Path(root) / "images", Path(root) / "indexes"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{root}: expected images/ and indexes/ folders (seed 001's layout)")
    samples = []
    for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        index, color = masks_dir / f"{image.stem}.png", masks_dir / f"{image.stem}_color_mask.png"
        if index.is_file():
            samples.append(Sample(image, index, False))
        elif color.is_file():
            samples.append(Sample(image, color, True))
    if not samples:
        raise DataError(
            f"{masks_dir}: no <stem>.png or <stem>_color_mask.png matching an image in {images_dir}"
        )
    return samples


def split_samples(
    samples: list[Sample], val_fraction: float, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Deterministic partition by file name (training.splits)."""
    val = val_indices([s.image.name for s in samples], val_fraction, seed)
    return [s for i, s in enumerate(samples) if i not in val], [s for i, s in enumerate(samples) if i in val]


def colors_to_index(color_mask_bgr: np.ndarray, colors_rgb: list[list[int]]) -> np.ndarray:
    index = np.full(color_mask_bgr.shape[:2], IGNORE_INDEX, np.uint8)
    for i, (r, g, b) in enumerate(colors_rgb):
        index[np.all(color_mask_bgr == (b, g, r), axis=-1)] = i
    return index


def read_mask(sample: Sample, table: ClassTable) -> np.ndarray:
    if sample.is_color:
        mask = cv2.imread(str(sample.mask), cv2.IMREAD_COLOR)
        if mask is None:
            raise DataError(f"{sample.mask}: not a readable image")
        return colors_to_index(mask, table.colors)
    mask = cv2.imread(str(sample.mask), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{sample.mask}: not a readable image")
    return mask[..., 0] if mask.ndim == 3 else mask


def check_mask_values(mask: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    labelled = mask[mask != IGNORE_INDEX]
    if labelled.size and int(labelled.max()) >= num_classes:
        raise DataError(
            f"{path}: class index {int(labelled.max())} but --num-classes is {num_classes} (255 = ignore)"
        )
    return mask


class SegmentationDataset(torch.utils.data.Dataset):
    """(image CHW float32 normalised, mask HW int64) through an albumentations pipeline."""

    def __init__(self, samples: list[Sample], table: ClassTable, transform):
        self.samples, self.table, self.transform = samples, table, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        sample = self.samples[i]
        image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{sample.image}: not a readable image")
        mask = check_mask_values(read_mask(sample, self.table), len(self.table.names), sample.mask)
        if mask.shape != image.shape[:2]:
            raise DataError(f"{sample.mask}: size {mask.shape} differs from its image {image.shape[:2]}")
        out = self.transform(image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask=mask)
        return torch.from_numpy(out["image"].transpose(2, 0, 1).copy()), torch.from_numpy(out["mask"]).long()


def transforms(size_wh: tuple[int, int], mean, std, train: bool):
    """albumentations: resize (INTER_LINEAR; masks nearest) and normalise exactly as the server does."""
    import albumentations as A

    width, height = size_wh
    steps = [A.Resize(height, width)]
    if train:
        steps += [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.9, 1.1),
                translate_percent=(-0.05, 0.05),
                rotate=(-10, 10),
                p=0.5,
                fill=0,
                fill_mask=IGNORE_INDEX,
            ),
            A.RandomBrightnessContrast(p=0.3),
        ]
    steps.append(A.Normalize(mean=mean, std=std, max_pixel_value=255.0))
    return A.Compose(steps)
