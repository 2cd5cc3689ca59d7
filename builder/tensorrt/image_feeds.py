"""Model inputs for int8 calibration and for the engine check: image files decoded and prepared
exactly as the server's ``<name>_preprocess`` model does (segops.decode + segops.resize)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from builder.errors import BuildError
from segcontract.image_files import IMAGE_SUFFIXES, image_paths
from segops.decode import ImageDecodeError, decode_image
from segops.resize import InputSpec, prepare

log = logging.getLogger("build-repo")


def image_files(folder: Path) -> list[Path]:
    """The images below ``folder`` (the listing seg-client uses); missing or none: a one-line error."""
    if not folder.is_dir():
        raise BuildError(f"--images {folder}: no such folder; give a folder of representative images")
    files = image_paths(folder)
    if not files:
        raise BuildError(
            f"--images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or below it"
        )
    return files


def exact_batches(items: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Stacks of exactly ``batch_size`` items; the last repeats its own items to fill up (TensorRT
    calibrates at the profile's opt shape, and every check feed must lie inside the profile)."""
    batch: list[np.ndarray] = []
    for x in items:
        batch.append(x)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack([batch[i % len(batch)] for i in range(batch_size)])


class ImageFeeds:
    """A Polygraphy data loader: yields ``{input_name: batch}`` feed dicts of exactly ``batch_size``
    images (see exact_batches), from at most ``limit`` decodable images. Undecodable files are
    logged and skipped."""

    def __init__(
        self,
        files: Sequence[Path],
        spec: InputSpec,
        input_name: str,
        batch_size: int,
        limit: int | None = None,
    ):
        self.files = list(files)
        self.limit = limit
        self.spec = spec
        self.input_name = input_name
        self.batch_size = batch_size
        self.skipped: list[tuple[Path, str]] = []

    def _prepared(self) -> Iterator[np.ndarray]:
        self.skipped = []
        count = 0
        for path in self.files:
            if self.limit is not None and count == self.limit:
                return
            try:
                image = decode_image(path.read_bytes())
            except (ImageDecodeError, OSError) as exc:
                self.skipped.append((path, str(exc)))
                log.warning("skipping %s: %s", path, exc)
                continue
            count += 1
            yield prepare(image, self.spec)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for batch in exact_batches(self._prepared(), self.batch_size):
            yield {self.input_name: batch}


def rebatch(arrays: Sequence[np.ndarray], input_name: str, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Batched arrays → feed dicts of exactly ``batch_size`` items."""
    items = [x for a in arrays for x in a]
    if not items:
        raise ValueError("no inputs to rebatch")
    return [{input_name: batch} for batch in exact_batches(items, batch_size)]
