"""``seg-client segments export`` as a library call: a group's stored segments in one file for
annotators (COCO instances JSON or CVAT for images 1.1 XML), written atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clients.segments.selection import chosen_images, chosen_segments
from clients.segments.store_cli import NOT_REJECTED, open_store
from clients.triton.client import ClientError
from segcontract.files import write_atomic
from store.layout import DataLayout


@dataclass(frozen=True)
class ExportOptions:
    fmt: str  # "coco" or "cvat"
    out: Path
    group: str | None = None
    cvat_shape: str = "polygon"  # or "mask": CVAT's own RLE
    statuses: tuple[str, ...] = NOT_REJECTED
    model: str | None = None  # whose segments (needed when the store holds several models')
    db: str | None = None
    data_root: Path = Path(".")


@dataclass(frozen=True)
class ExportReport:
    images: int
    badlisted: int  # left out
    segments: int
    out: Path

    def line(self) -> str:
        left = f" ({self.badlisted} badlisted left out)" if self.badlisted else ""
        return f"{self.images} images{left}, {self.segments} segments → {self.out}"


def export_segments(options: ExportOptions) -> ExportReport:
    from clients.segments.exports import coco_instances, cvat_images_xml

    with open_store(options.db, DataLayout(options.data_root)) as store:
        images = chosen_images(store, options.group)
        badlisted = len(store.images(group=options.group, include_badlisted=True)) - len(images)
        found = chosen_segments(store, options.group, options.model, options.statuses)
    try:
        if options.fmt == "coco":
            data = json.dumps(coco_instances(images, found, class_names=[])).encode()
        else:
            task = options.group or "segstack"
            data = cvat_images_xml(images, found, class_names=[], shape=options.cvat_shape, task_name=task)
    except ValueError as exc:
        raise ClientError(f"cannot export: {exc}") from None
    try:
        write_atomic(options.out, data)
    except OSError as exc:
        raise ClientError(f"cannot write {options.out}: {exc.strerror or exc}") from None
    return ExportReport(len(images), badlisted, len(found), options.out)
