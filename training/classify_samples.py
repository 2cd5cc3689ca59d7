"""The samples one `seg-train classify` run trains on: read from where its options point (a group's
CSV or class folders), less what the segment store badlists now, as segments with
--use-segments; then split into train and val, and written down (split.csv, a few augmented
batches) for a person to check.

Every problem is a :class:`~training.classify_data.DataError`: one line naming the input and the fix.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

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
from training.classify_options import ClassifyOptions

log = logging.getLogger("seg-train")

TRAIN_BATCH_GRIDS = 3
GRID_IMAGES = 16
ONE_SOURCE = "give one of --cat NAME (DATA/datasets/NAME.csv) or --data DIR (class folders)"


def collect_samples(opts: ClassifyOptions, layout: DataLayout) -> tuple[list[Sample], ReadReport]:
    """Every usable sample (whole images, or segments with --use-segments) and what was skipped."""
    if (opts.cat is None) == (opts.data is None):
        raise DataError(ONE_SOURCE)
    report = ReadReport()
    if opts.cat is not None:
        if not opts.cat or "/" in opts.cat or opts.cat in (".", ".."):
            raise DataError(f"--cat {opts.cat!r}: a group name under {layout.datasets}")
        samples = read_csv_samples(layout.datasets / f"{opts.cat}.csv", layout.pictures, report)
        where = layout.datasets / f"{opts.cat}.csv"
    else:
        samples = read_folder_samples(Path(opts.data), report)
        where = Path(opts.data)
    if not samples:
        raise DataError(f"{where}: no labelled images")
    samples = _without_badlisted(samples, opts, layout, report)
    if not samples:
        raise DataError(
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
        raise DataError(f"{exc} (training reads its badlist)") from None
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
    """One sample per approved segment of ``images`` in the segment store (training only reads it)."""
    from store.records import Status
    from store.segment_store import SegmentStore

    url = database_url(opts.db, layout)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise DataError(f"segment store {url}: no such file; pass --db, or run seg-client segments build")
    try:
        with SegmentStore.open(url, create=False) as store:
            model = store.segment_model(opts.segment_model)
            segments = store.segments(model=model, statuses=[Status.APPROVED])
            picture_sha256 = {image.path: image.sha256 for image in store.images()}
    except StoreError as exc:
        raise DataError(str(exc)) from None
    log.info("%d approved segments of %s in %s", len(segments), model, url)
    report.segment_model = model
    return segment_samples(images, segments, sizes, layout.pictures, report, picture_sha256)


@dataclass(frozen=True)
class TrainingSplit:
    classes: list[str]  # in index order
    train: list[Sample]
    val: list[Sample]


def split_for_training(samples: list[Sample], val_fraction: float, seed: int) -> TrainingSplit:
    """The classes and the train/val split, logged; at least two classes and a sample on each side."""
    classes = class_names_of(samples)
    if len(classes) < 2:
        found = classes[0] if classes else "none"
        raise DataError(f"{len(samples)} usable samples, all of class {found}: at least 2 classes needed")
    train, val = split_samples(samples, val_fraction, seed)
    if not val:
        raise DataError("no validation samples: give --val-fraction > 0 (or val rows in the split column)")
    if not train:
        raise DataError("no training samples: every sample is in the validation split")
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
    return TrainingSplit(classes, train, val)


def write_split(path: Path, train: list[Sample], val: list[Sample]) -> None:
    """split.csv: image,label,split of every image used, by image."""
    rows = {}
    for split, samples in (("train", train), ("val", val)):
        for s in samples:
            rows[s.key] = (s.key, s.label, split)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "split"])
        writer.writerows(rows[k] for k in sorted(rows))


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
