"""``seg-client segments import`` as a library call: annotators' work (a CVAT for images 1.1 XML or
a COCO 1.0 export of a task pre-annotated from our export) read, compared image by image with the
stored segments (``import_match``) and applied by the store, one transaction per image.

The store keeps a ledger per file content (sha256): a run that was killed resumes where it
stopped, and a finished file imported again changes nothing. An image whose segments changed
between the read and the write (a ``segments build`` or a reviewer at work on it) is read and
compared again, once. Unknown images, unknown labels and shapes outside the image are reported
(``ImportReport.notes``), never guessed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from annotations.errors import AnnotationFormatError
from clients.segments.import_match import classify_image
from clients.segments.import_shapes import ImportedFile, ImportedImage, read_annotator_file
from clients.segments.store_cli import open_store, shown
from clients.triton.client import ClientError
from clients.triton.progress import Progress, no_progress
from store.errors import StaleSegments
from store.layout import DataLayout
from store.names import normalise_name
from store.records import ImportLedger, ImportSource, StoredImage

MAX_FILE_BYTES = 2 * 1024**3  # an annotation file larger than this is refused
KEYS = ("unchanged", "edited", "relabelled", "rejected", "added", "skipped")


@dataclass(frozen=True)
class ImportOptions:
    file: Path
    fmt: str  # "cvat" or "coco": what the user says the file is
    reviewer: str
    group: str | None = None
    model: str | None = None  # the segment set the file was exported from, when it cannot tell
    db: str | None = None
    data_root: Path = Path(".")


@dataclass
class ImportReport:
    file: Path
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEYS, 0))
    images: int = 0  # applied by this run
    resumed: int = 0  # done by an earlier, interrupted run of the same file
    already_imported: datetime | None = None  # the file was imported before: nothing changed
    unfinished: int = 0  # images skipped whole: the file is not marked imported, a re-run retries them
    notes: list[str] = field(default_factory=list)  # what was skipped, and why

    def line(self) -> str:
        counted = ", ".join(f"{self.counts[k]} {k}" for k in KEYS)
        if self.already_imported is not None:
            stamp = self.already_imported.strftime("%Y-%m-%d %H:%M UTC")
            return f"{self.file}: already imported on {stamp}; nothing changed (then: {counted})"
        resumed = f" ({self.resumed} done by an earlier run)" if self.resumed else ""
        line = f"{self.file}: {self.images} images{resumed}: {counted}"
        if self.unfinished:
            line += f"; {self.unfinished} images skipped: importing the file again retries them"
        return line

    def as_json(self) -> dict:
        return {
            **self.counts,
            "images": self.images,
            "resumed_images": self.resumed,
            "unfinished_images": self.unfinished,
            "already_imported": self.already_imported.isoformat() if self.already_imported else None,
            "notes": self.notes,
        }


def _read(options: ImportOptions) -> tuple[ImportedFile, str]:
    path = options.file
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ClientError(f"{path}: cannot read it ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise ClientError(f"{path}: {size} bytes is more than an import reads; split the task's export")
    try:
        parsed = read_annotator_file(path)
    except AnnotationFormatError as exc:
        raise ClientError(str(exc)) from None
    if parsed.fmt != options.fmt:
        raise ClientError(
            f"{path} is a {parsed.fmt.upper()} file, not {options.fmt.upper()}: pass --format {parsed.fmt}"
        )
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return parsed, digest.hexdigest()


def _model(store, parsed: ImportedFile, wanted: str | None) -> str:
    """The segment set the file was exported from: ``wanted``, else the one its segment ids name,
    else the store's only one."""
    ids = {s.segment_id for image in parsed.images for s in image.shapes if s.segment_id is not None}
    named = sorted(set(store.segment_models(ids).values())) if ids else []
    if wanted is not None:
        return store.segment_model(wanted)
    if len(named) > 1:
        raise ClientError(
            f"the file's segment ids name segments of {len(named)} models ({', '.join(map(shown, named))}): "
            "pick one with --model"
        )
    return named[0] if named else store.segment_model(None)


class _Importer:
    def __init__(self, store, options: ImportOptions, source: ImportSource, ledger: ImportLedger, model: str):
        self.store, self.options, self.source, self.ledger, self.model = store, options, source, ledger, model
        self.classes = store.class_table(model)
        self.report = ImportReport(options.file)
        self.skipped_images = self.skipped_shapes = 0  # images skipped whole: a re-run retries them
        self.paths: dict[str, list[str]] = {}  # the file's image names → the stored images they name

    def _skip(self, image: ImportedImage, why: str) -> None:
        shapes = len(image.shapes) + len(image.unsupported)
        self.report.counts["skipped"] += shapes
        self.skipped_images += 1
        self.skipped_shapes += shapes
        self.report.notes.append(f"image {shown(image.name)!r}: {why}; its {shapes} shapes skipped")

    def _stored(self, image: ImportedImage) -> tuple[StoredImage | None, list]:
        paths = self.paths.get(normalise_name(image.name), [])
        name = image.name if image.name in paths else paths[0] if len(paths) == 1 else None
        stored, segments = self.store.image_segments(name, self.model) if name else (None, [])
        if stored is None:
            if len(paths) > 1:
                self._skip(image, f"names {len(paths)} stored images; name it by its store path")
                return None, []
            self._skip(image, "not in the store (`segments build` segments it first)")
            return None, []
        if self.options.group is not None and self.options.group not in stored.groups:
            self._skip(image, f"not in group {self.options.group!r}")
            return None, []
        if stored.badlisted:
            self._skip(image, "badlisted")
            return None, []
        if (stored.width, stored.height) != (image.width, image.height):
            sizes = f"{image.width}x{image.height}, the store {stored.width}x{stored.height}"
            self._skip(image, f"the file says {sizes}")
            return None, []
        return stored, segments

    def image(self, image: ImportedImage) -> None:
        stored, segments = self._stored(image)
        if stored is None:
            return
        if stored.id in self.ledger.done_images:
            self.report.resumed += 1
            return
        for attempt in range(2):
            decisions = classify_image(image, segments, self.classes)
            try:
                applied = self.store.apply_import(self.ledger, self.source, stored, self.model, decisions)
                break
            except StaleSegments:
                if attempt:
                    self._skip(image, "its segments kept changing while it was imported; import it again")
                    return
                stored, segments = self._stored(image)
                if stored is None:
                    return
        if not applied:  # another run of the same file applied it meanwhile
            self.report.resumed += 1
            return
        self.report.images += 1
        for key, n in applied.items():
            self.report.counts[key] += n
        self.report.notes += [d.note for d in decisions if d.outcome.value == "skipped" and d.note]


def import_annotations(
    options: ImportOptions,
    progress: Progress = no_progress,
    on_note: Callable[[str], None] | None = None,
) -> ImportReport:
    """Read ``options.file`` and apply it to the store (see the module docstring)."""
    parsed, sha256 = _read(options)
    source = ImportSource(
        options.file.name, sha256, options.fmt, options.reviewer, parsed.task_id, parsed.job_id
    )
    with open_store(options.db, DataLayout(options.data_root)) as store:
        model = _model(store, parsed, options.model)
        ledger = store.begin_import(source)
        if ledger.finished_at is not None:
            report = ImportReport(options.file, already_imported=ledger.finished_at)
            report.counts.update(ledger.summary)
            return report
        importer = _Importer(store, options, source, ledger, model)
        importer.paths = store.images_named(image.name for image in parsed.images)
        with progress("import", len(parsed.images)) as advance:
            for image in parsed.images:
                before = len(importer.report.notes)
                importer.image(image)
                for note in importer.report.notes[before:]:
                    if on_note is not None:
                        on_note(f"seg-client: {note}")
                advance(1)
        report = importer.report
        if importer.skipped_images:  # not done: a re-run applies what it can then, nothing twice
            report.unfinished = importer.skipped_images
        else:
            report.counts = store.finish_import(ledger, {"skipped": importer.skipped_shapes})
    return report
