"""Training sets from the segment store, decided without a database: which images and segments go
in, their names and splits, the YOLO label lines, the semantic index masks, and the manifest.

Which segments: those still in play (not rejected, and not replaced by a correction: a segment
with ``replaces = N`` takes the place of segment N, whatever N's status), approved, or also
unchecked with ``include_unchecked``.

Which images: those with at least one stored segment (any status) none of whose segments in play
is unchecked, i.e. fully reviewed; an image whose every segment was rejected or replaced goes in
as a background image (a reviewed negative). With ``include_unchecked``, every image with a
stored segment goes in.

Names: an image's store path with its separators turned into ``__`` (``cam/a.jpg`` →
``cam__a.jpg``), so that one flat folder holds every image and each label or mask is found by
its stem.

Split (YOLO): an image is in val when the sha256 of its store path, read as a number in [0, 1),
is below the val fraction, so an image's side never changes as the group grows; neither side is
left empty (one image alone is in both).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

import numpy as np

from annotations.mask_png import instance_index
from annotations.polygons import mask_polygons
from annotations.yolo import yolo_line
from clients.segments.mask_files import check_mask_size, score_order, segment_mask
from segcontract.masks import IGNORE_INDEX, index_dtype
from segops.colors import voc_palette
from store.records import Origin, Status, StoredImage, StoredSegment, segments_in_play

SPLITS = ("train", "val")
BACKGROUND = "background"

NOT_REVIEWED = "not fully reviewed (--include-unchecked adds them)"
NO_SEGMENTS = "no stored segment"


@dataclass(frozen=True)
class Selection:
    """What goes in: ``images`` in path order, each with its chosen ``segments`` (image id →
    segments, highest score first; empty for a background image), and the images left out by
    reason."""

    images: list[StoredImage]
    segments: dict[int, list[StoredSegment]]
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def chosen(self) -> list[StoredSegment]:
        return [s for image in self.images for s in self.segments[image.id]]


def select(
    images: Sequence[StoredImage], segments: Sequence[StoredSegment], include_unchecked: bool = False
) -> Selection:
    """The images and segments of a training set (see the module docstring): ``images`` are the
    candidates (badlisted ones already left out), ``segments`` all their stored segments, any
    status."""
    by_image: dict[int, list[StoredSegment]] = defaultdict(list)
    for segment in segments:
        by_image[segment.image_id].append(segment)
    chosen, kept, left_out = [], {}, Counter()
    for image in sorted(images, key=lambda i: i.path):
        stored = by_image.get(image.id, [])
        if not stored:
            left_out[NO_SEGMENTS] += 1
            continue
        playing = segments_in_play(stored)
        if not include_unchecked and any(s.status == Status.UNCHECKED for s in playing):
            left_out[NOT_REVIEWED] += 1
            continue
        chosen.append(image)
        kept[image.id] = score_order(playing)
    return Selection(chosen, kept, left_out)


# --- names and splits ----------------------------------------------------------------------------


def flat_name(path: str) -> str:
    """The image's file name in the dataset: its store path (relative to DATA/pictures, or
    absolute) with the separators turned into ``__``; the extension is kept."""
    return "__".join(p for p in PurePosixPath(path).parts if p != "/")


def flat_names(images: Sequence[StoredImage]) -> dict[int, str]:
    """image id → its file name in the dataset; ValueError when two images get one stem (labels
    and masks are named by it)."""
    names, by_stem = {}, {}
    for image in images:
        name = flat_name(image.path)
        stem = PurePosixPath(name).stem
        if stem in by_stem:
            raise ValueError(
                f"{by_stem[stem]} and {image.path} both become {stem!r} in the dataset (labels and "
                "masks are named by it): rename one of the pictures, or badlist one"
            )
        by_stem[stem] = image.path
        names[image.id] = name
    return names


def _position(path: str) -> float:
    return int(hashlib.sha256(path.encode()).hexdigest()[:16], 16) / 2**64


def split_of(paths: Sequence[str], val_fraction: float) -> dict[str, tuple[str, ...]]:
    """path → the splits it is in (``("train",)``, ``("val",)``, or both for a lone image)."""
    if len(paths) == 1:
        return {paths[0]: SPLITS}
    ranked = sorted(paths, key=_position)
    val = {p for p in ranked if _position(p) < val_fraction}
    if not val:
        val = {ranked[0]}
    if len(val) == len(ranked):
        val.discard(ranked[-1])
    return {p: ("val",) if p in val else ("train",) for p in paths}


# --- classes ------------------------------------------------------------------------------------


def class_names(segments: Iterable[StoredSegment]) -> list[str]:
    """Names of the class ids 0 to the largest among ``segments`` (a contiguous list, as
    ultralytics wants): each id's name, ``class_<id>`` for an id no segment has; ValueError when
    one id has two names, or one name two ids."""
    by_id: dict[int, str] = {}
    by_name: dict[str, int] = {}
    for s in segments:
        if s.class_id < 0:
            raise ValueError(f"segment {s.id} has the class id {s.class_id}: class ids start at 0")
        if by_id.setdefault(s.class_id, s.class_name) != s.class_name:
            raise ValueError(
                f"class id {s.class_id} is named both {by_id[s.class_id]!r} and {s.class_name!r} "
                f"(segment {s.id}): one model's segments must share one class list; pick it with --model"
            )
        if by_name.setdefault(s.class_name, s.class_id) != s.class_id:
            raise ValueError(
                f"class {s.class_name!r} has the ids {by_name[s.class_name]} and {s.class_id} "
                f"(segment {s.id}): one model's segments must share one class list; pick it with --model"
            )
    top = max(by_id, default=-1)
    return [by_id.get(i, f"class_{i}") for i in range(top + 1)]


# --- YOLO ----------------------------------------------------------------------------------------


def yolo_lines(segment: StoredSegment, mask: np.ndarray | None = None) -> list[str]:
    """One ``class_id x1 y1 x2 y2 ...`` line per outer outline of the segment's mask: pixel-edge
    polygons (``annotations.polygons``; holes are filled) divided by the image's width and height,
    six decimals."""
    mask = segment_mask(segment) if mask is None else mask
    height, width = mask.shape
    return [yolo_line(segment.class_id, polygon, width, height) for polygon in mask_polygons(mask)]


def yolo_label(image: StoredImage, segments: Sequence[StoredSegment]) -> list[str]:
    """The label file's lines of ``image`` (none: a background image)."""
    lines = []
    for segment in segments:
        check_mask_size(image, segment)
        lines += yolo_lines(segment)
    return lines


# --- semantic ------------------------------------------------------------------------------------


def semantic_classes(
    names: Sequence[str], segments: Iterable[StoredSegment] = ()
) -> tuple[list[str], list[tuple[int, int, int]]]:
    """The semantic family's class table: background (index 0), then class id ``i`` at index
    ``i + 1``; colours of the PASCAL VOC palette. ValueError when one of ``segments`` would paint
    index 255, which seg-train semantic reads as "ignore" (past it, the masks are 16-bit)."""
    for s in segments:
        if s.class_id + 1 == IGNORE_INDEX:
            raise ValueError(
                f"class {s.class_name!r} (id {s.class_id}, segment {s.id}) would be index "
                f"{IGNORE_INDEX}, which seg-train semantic ignores: it cannot be in a semantic set"
            )
    table = [BACKGROUND, *names]
    return table, voc_palette(len(table))


def index_mask(image: StoredImage, segments: Sequence[StoredSegment], num_classes: int) -> np.ndarray:
    """``class_id + 1`` per pixel, 0 for background; where segments overlap, the higher score wins
    (ties: the smaller id). uint8 while ``num_classes - 1`` fits, else uint16."""
    ordered = score_order(segments)
    for segment in ordered:
        check_mask_size(image, segment)
    dtype = index_dtype(num_classes - 1)
    instances = instance_index(
        (segment_mask(s) for s in ordered), image.height, image.width, count=len(ordered)
    )
    lookup = np.array([0, *(s.class_id + 1 for s in ordered)], dtype)
    return lookup[instances]


def colors_csv(names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> str:
    """seed 001's colors.csv: a header, then ``name,r,g,b`` per class in index order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "r", "g", "b"])
    writer.writerows([name, *rgb] for name, rgb in zip(names, colors))
    return out.getvalue()


# --- the manifest --------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def segment_entry(segment: StoredSegment) -> dict:
    """What the manifest records of a segment: enough to trace a trained model to its reviews."""
    return {
        "id": segment.id,
        "image": segment.image,
        "class_id": segment.class_id,
        "class_name": segment.class_name,
        "status": Status(segment.status).value,
        "origin": Origin(segment.origin).value,
        "revision": segment.revision,
        "reviewer": segment.reviewer,
        "reviewed_at": _when(segment.reviewed_at),
        "replaces": segment.replaces,
        "model": segment.model,
        "model_version": segment.model_version,
        "source_file": segment.source_file,
    }


def canonical_sha256(value: object) -> str:
    """The sha256 of ``value`` as canonical JSON: keys sorted, no spaces, ASCII."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ManifestFacts:
    """What a manifest says besides the images and segments."""

    created: datetime
    store: str  # the store's URL, password-free
    group: str | None
    model: str | None
    fmt: str
    include_unchecked: bool
    val_fraction: float | None  # None: the format has no split (seg-train semantic splits itself)


def manifest(
    facts: ManifestFacts,
    selection: Selection,
    names: dict[int, str],
    splits: dict[str, tuple[str, ...]] | None,
) -> dict:
    """``manifest.json``: how the dataset was made, each image (store path, sha256, split, file
    name in the dataset) and each segment written (by id), and the sha256 of the segments list."""
    images = [
        {
            "path": image.path,
            "sha256": image.sha256,
            "split": None if splits is None else "+".join(splits[image.path]),
            "file": names[image.id],
        }
        for image in selection.images
    ]
    segments = [segment_entry(s) for s in sorted(selection.chosen, key=lambda s: s.id)]
    return {
        "created": facts.created.isoformat(),
        "store": facts.store,
        "group": facts.group,
        "model": facts.model,
        "format": facts.fmt,
        "include_unchecked": facts.include_unchecked,
        "val_fraction": facts.val_fraction,
        "images": images,
        "segments": segments,
        "segments_sha256": canonical_sha256(segments),
    }
