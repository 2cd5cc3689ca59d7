"""``seg-client segments export --format yolo|semantic`` as a library call: a training set of a
group's reviewed segments, in a new folder, made whole or not at all.

What goes in is ``clients.segments.datasets``' decision. The folder::

    yolo:      data.yaml                               path, train, val, names (as seg-train coco2yolo)
               images/{train,val}/<flat name>          hard links of DATA/pictures files (else copies)
               labels/{train,val}/<flat stem>.txt      "class_id x1 y1 ..." per outline; empty: background
    semantic:  images/<flat name>                      hard links (else copies)
               indexes/<flat stem>.png                 class_id + 1 per pixel, 0 background
               colors.csv                              name,r,g,b: background, then the classes
    both:      manifest.json                           how it was made, each image and segment

It is built in a sibling folder (``<DIR>.partial-<pid>-...``) and renamed to ``DIR`` at the end:
a killed run leaves no half dataset at ``DIR``. A ``DIR`` that exists and holds anything is
refused before any work: nothing this command did not write is ever replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml

from annotations.mask_png import write_png
from clients.segments.datasets import (
    NOT_REVIEWED,
    SPLITS,
    ManifestFacts,
    Selection,
    class_names,
    colors_csv,
    flat_names,
    index_mask,
    manifest,
    select,
    semantic_classes,
    split_of,
    yolo_label,
)
from clients.segments.selection import chosen_images, chosen_segments
from clients.segments.store_cli import open_store, shown
from clients.triton.client import ClientError
from segcontract.files import file_sha256, link_or_copy, write_json_atomic
from store.layout import DataLayout
from store.records import Status

FORMATS = ("yolo", "semantic")
DEFAULT_VAL_FRACTION = 0.2

MISSING = "picture missing"
CHANGED = "picture changed since it was segmented (segments build reads it again)"
BADLISTED = "badlisted"


@dataclass(frozen=True)
class DatasetOptions:
    fmt: str  # "yolo" or "semantic"
    out: Path  # the dataset's folder: new, or empty
    group: str | None = None
    model: str | None = None  # whose segments (needed when the store holds several models')
    include_unchecked: bool = False
    val_fraction: float | None = None  # yolo only (DEFAULT_VAL_FRACTION); semantic: None
    db: str | None = None
    data_root: Path = Path(".")


@dataclass
class DatasetReport:
    fmt: str
    out: Path
    images: dict[str, int]  # yolo: per split; semantic: {"images": n}
    background: int
    segments: int
    labels: int  # yolo: label lines (outlines); semantic: index masks
    num_classes: int  # yolo: names; semantic: background included (seg-train's --num-classes)
    copied: int = 0  # pictures copied, not linked (another file system)
    left_out: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        if self.fmt == "yolo":
            images = f"{self.images['train']} train + {self.images['val']} val images"
            labels = f"{self.labels} label lines"
        else:
            images, labels = f"{self.images['images']} images", f"{self.labels} index masks"
        parts = [f"{images} ({self.background} background)", f"{self.segments} segments", labels]
        if self.copied:
            parts.append(f"{self.copied} pictures copied (not on the dataset's file system)")
        line = f"{', '.join(parts)} → {self.out}"
        if left := sum(self.left_out.values()):
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))
            line += f"; {left} images left out: {reasons}"
        return line

    def next_step(self) -> str:
        if self.fmt == "yolo":
            return f"train: seg-train yolo --data {self.out / 'data.yaml'}"
        return (
            f"train: seg-train semantic --data-root {self.out} --num-classes {self.num_classes} "
            "--model-name NAME"
        )


def export_dataset(options: DatasetOptions) -> DatasetReport:
    out = _checked_out(options.out)
    layout = DataLayout(options.data_root)
    with open_store(options.db, layout) as store:
        images = chosen_images(store, options.group)
        badlisted = len(store.images(group=options.group, include_badlisted=True)) - len(images)
        found = chosen_segments(store, options.group, options.model, [s.value for s in Status])
        url = store.url
    selection = _present(select(images, found, options.include_unchecked), layout.pictures)
    if badlisted:
        selection.left_out[BADLISTED] += badlisted
    _refuse_empty(selection, options)
    try:
        names = flat_names(selection.images)
        classes = class_names(selection.chosen)
        table = semantic_classes(classes, selection.chosen)[0] if options.fmt == "semantic" else classes
    except ValueError as exc:
        raise ClientError(f"cannot export: {exc}") from None
    facts = ManifestFacts(
        created=datetime.now(timezone.utc),
        store=url,
        group=options.group,
        model=options.model or next((s.model for s in selection.chosen), None),
        fmt=options.fmt,
        include_unchecked=options.include_unchecked,
        val_fraction=_val_fraction(options),
    )
    report = DatasetReport(
        fmt=options.fmt,
        out=out,
        images={},
        background=sum(not selection.segments[i.id] for i in selection.images),
        segments=len(selection.chosen),
        labels=0,
        num_classes=len(table),
        left_out=selection.left_out,
    )
    pictures = {i.id: layout.pictures / i.path for i in selection.images}
    splits = None
    if options.fmt == "yolo":
        splits = split_of([i.path for i in selection.images], facts.val_fraction or 0.0)
    with _staged(out) as staging:
        link = _linker(report)
        try:
            if splits is not None:
                _write_yolo(staging, out, selection, names, classes, splits, pictures, link, report)
            else:
                _write_semantic(staging, selection, names, classes, pictures, link, report)
        except ValueError as exc:  # a mask of another size than its image
            raise ClientError(f"cannot export: {exc}") from None
        write_json_atomic(staging / "manifest.json", manifest(facts, selection, names, splits))
    return report


# --- before the work -----------------------------------------------------------------------------


def _checked_out(out: Path) -> Path:
    """``out`` resolved; refused when it is a file, or a folder holding anything."""
    resolved = Path(out).expanduser().resolve()
    if resolved.exists() and not resolved.is_dir():
        raise ClientError(f"--out {out} is a file; a training set is a folder: give a new one")
    if resolved.is_dir() and any(resolved.iterdir()):
        raise ClientError(f"--out {out} is not empty (nothing in it was changed): give a new or empty folder")
    return resolved


def _val_fraction(options: DatasetOptions) -> float | None:
    if options.fmt != "yolo":
        return None
    return DEFAULT_VAL_FRACTION if options.val_fraction is None else options.val_fraction


def _present(selection: Selection, pictures: Path) -> Selection:
    """The selection without the images whose picture is missing, or no longer the one the store
    segmented (another sha256): their masks would not fit it."""
    kept, left_out = [], Counter(selection.left_out)
    for image in selection.images:
        path = pictures / image.path
        try:
            same = file_sha256(path) == image.sha256
        except OSError:
            left_out[MISSING] += 1
            continue
        if same:
            kept.append(image)
        else:
            left_out[CHANGED] += 1
    return Selection(kept, {i.id: selection.segments[i.id] for i in kept}, left_out)


def _refuse_empty(selection: Selection, options: DatasetOptions) -> None:
    where = f"group {shown(options.group)!r}" if options.group else "the store"
    if not selection.images:
        if not options.include_unchecked and selection.left_out[NOT_REVIEWED]:
            raise ClientError(
                f"no reviewed image in {where}: review their segments first (seg-client segments "
                "review) or pass --include-unchecked"
            )
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(selection.left_out.items()))
        raise ClientError(f"no image of {where} can go in the training set ({reasons})")
    if not selection.chosen:
        raise ClientError(
            f"every segment of the {len(selection.images)} images of {where} was rejected: a "
            "training set of background images only teaches nothing; approve segments first"
        )


# --- writing -------------------------------------------------------------------------------------


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A new sibling folder of ``out`` to build in, renamed to ``out`` when the block ends without
    an error, and removed when it raises."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.partial-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise ClientError(f"cannot write beside {out}: {exc.strerror or exc}") from None
    try:
        try:
            yield staging
            staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700
            os.rename(staging, out)  # replaces an empty folder only
        except OSError as exc:
            raise ClientError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _linker(report: DatasetReport) -> Callable[[Path, Path], None]:
    """Hard-link a picture into the dataset; a copy where linking fails (another file system),
    counted in the report."""

    def link(src: Path, dst: Path) -> None:
        if not link_or_copy(src, dst):
            report.copied += 1

    return link


def _write_yolo(
    staging: Path,
    out: Path,
    selection: Selection,
    names: dict[int, str],
    classes: list[str],
    splits: dict[str, tuple[str, ...]],
    pictures: dict[int, Path],
    link: Callable[[Path, Path], None],
    report: DatasetReport,
) -> None:
    for split in SPLITS:
        (staging / "images" / split).mkdir(parents=True)
        (staging / "labels" / split).mkdir(parents=True)
    report.images = dict.fromkeys(SPLITS, 0)
    for image in selection.images:
        lines = yolo_label(image, selection.segments[image.id])
        stem = PurePosixPath(names[image.id]).stem
        for split in splits[image.path]:
            link(pictures[image.id], staging / "images" / split / names[image.id])
            (staging / "labels" / split / f"{stem}.txt").write_text("".join(f"{x}\n" for x in lines))
            report.images[split] += 1
        report.labels += len(lines)
    data = {"path": str(out), "train": "images/train", "val": "images/val", "names": dict(enumerate(classes))}
    (staging / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _write_semantic(
    staging: Path,
    selection: Selection,
    names: dict[int, str],
    classes: list[str],
    pictures: dict[int, Path],
    link: Callable[[Path, Path], None],
    report: DatasetReport,
) -> None:
    table, colors = semantic_classes(classes)
    (staging / "images").mkdir()
    (staging / "indexes").mkdir()
    for image in selection.images:
        link(pictures[image.id], staging / "images" / names[image.id])
        labels = index_mask(image, selection.segments[image.id], len(table))
        write_png(staging / "indexes" / f"{PurePosixPath(names[image.id]).stem}.png", labels)
        report.labels += 1
    (staging / "colors.csv").write_text(colors_csv(table, colors))
    report.images = {"images": len(selection.images)}
