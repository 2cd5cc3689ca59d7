"""Which pictures a model has answered in ``meta build``, marked one by one as the run goes.

Each picture answered or failed is marked as soon as its record is written, under
``<group>/answers/<model>/``: a run killed mid-model leaves those marks, so its re-run asks only
about the pictures not marked, and workers sharing a group read each other's failures there.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from clients.inference.writers import Writer
from clients.meta.layout import read_json
from clients.meta.pictures import Picture
from clients.triton.client import INVALID_ARGUMENT, ClientError, ModelInfo
from clients.triton.image_sources import ImageItem
from clients.triton.replicas import Servers
from clients.triton.request_loop import RequestError, asking
from segcontract.files import remove_leftover_temps, write_json_atomic


class Answers:
    """One model's marks on a group's pictures: ``<name>.json`` per picture, written atomically
    once its record is written (or once it failed, with the reason), naming the sha256 of the
    bytes sent and the stamp (model, version, settings) they were asked under. A mark of another
    stamp says the record is not this stamp's answer. They sit beside ``models/`` (not among the
    records, where a picture's own name could clash with one)."""

    def __init__(
        self,
        folder: Path,
        model: str,
        version: str,
        settings: dict[str, Any],
        pictures: list[Picture],
        names: dict[ImageItem, Path],
    ):
        self.folder = folder
        self.stamp = hashlib.sha256(
            json.dumps([model, version, settings], sort_keys=True).encode()
        ).hexdigest()[:32]
        self.names = names
        self.pictures = {p.item: p for p in pictures}
        self.by_path = {str(p.item.path): p.item for p in pictures}
        self.marked: set[ImageItem] = set()  # by this run
        self.started = time.time()
        remove_leftover_temps(folder)

    def _path(self, item: ImageItem) -> Path:
        return self.folder / f"{self.names[item]}.json"

    def answered(self, earlier: dict[str, str]) -> dict[str, str]:
        """Picture name → sha256 of the pictures answered under this stamp: by each one's mark,
        else (a folder an older meta build wrote, with no marks) by ``earlier``, model.json's."""
        answered = {}
        for item, picture in self.pictures.items():
            mark = read_json(self._path(item))
            if mark is None:
                if picture.name in earlier:
                    answered[picture.name] = earlier[picture.name]
            elif mark.get("stamp") == self.stamp and "failed" not in mark:
                answered[picture.name] = mark.get("sha256")
        return answered

    def mark(self, item: ImageItem) -> dict | None:
        """``item``'s mark under this stamp, whoever wrote it; None where there is none."""
        mark = read_json(self._path(item))
        return mark if mark is not None and mark.get("stamp") == self.stamp else None

    def failed_since(self, item: ImageItem, began: datetime) -> bool:
        """Whether ``item`` is marked failed under this stamp since ``began`` (the database's
        clock) or since this run started (this machine's, as the mark's time is: a skewed database
        clock cannot hide a failure met while this worker ran)."""
        path = self._path(item)
        mark = self.mark(item)
        try:
            since = min(began.timestamp(), self.started)
            return mark is not None and "failed" in mark and path.stat().st_mtime >= since
        except OSError:
            return False

    def write(self, item: ImageItem, data: bytes | None, failed: str | None = None) -> None:
        sha256 = hashlib.sha256(data).hexdigest() if data is not None else self.pictures[item].sha256
        mark = {"image": self.pictures[item].name, "sha256": sha256, "stamp": self.stamp}
        if failed is not None:
            mark["failed"] = failed
        write_json_atomic(self._path(item), mark)
        self.marked.add(item)

    def reporting(self, on_failure: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """``on_failure`` that first marks the image failed, unless its writer did (a picture that
        could not even be read, a request that failed for want of a reply)."""

        def failed(image: str, reason: str) -> None:
            item = self.by_path.get(image)
            if item is not None and item not in self.marked:
                try:
                    self.write(item, None, reason)
                except OSError as exc:
                    raise ClientError(
                        f"cannot write results under {self.folder}: {exc.strerror or exc}"
                    ) from None
            on_failure(image, reason)

        return failed


class MarkingWriter(Writer):
    """The writer of a model's task, marking each picture it answered or that the server refused
    (``Answers``) before the request loop (and a shared run's claim) is done with it: a killed
    run loses only the pictures in flight, and another worker finds the failure."""

    def __init__(self, writer: Writer, answers: Answers):
        super().__init__(writer.overrides)
        self.writer = writer
        self.answers = answers
        self.task = writer.task
        self.takes = writer.takes

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        try:
            found = asking(client, model, lambda: self.writer(client, model, item, data, base, overlay_path))
        except RequestError as exc:
            if exc.status == INVALID_ARGUMENT:  # the image's own failure: no one asks again this run
                self.answers.write(item, data, str(exc))
            raise
        except ValueError as exc:  # this image's failure too (a picture the store does not know...)
            self.answers.write(item, data, str(exc))
            raise
        self.answers.write(item, data)
        return found

    def done(self, model: ModelInfo, item: ImageItem, path: Path) -> bool:
        return self.writer.done(model, item, path)

    def failed_since(self, item: ImageItem, began: datetime) -> bool:
        return self.answers.failed_since(item, began)
