"""Model inputs for int8 calibration and for the engine check: image files decoded and prepared
exactly as the server's ``<name>_preprocess`` model does (segops.decode + segops.resize)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from builder.errors import BuildError
from clients.image_sources import IMAGE_SUFFIXES
from serving.python_backend.segops.decode import ImageDecodeError, decode_image
from serving.python_backend.segops.resize import InputSpec, prepare

log = logging.getLogger("build-repo")


def image_files(folder: Path) -> list[Path]:
    """The images below ``folder``, sorted; a missing or image-less folder is a one-line error."""
    if not folder.is_dir():
        raise BuildError(f"--images {folder}: no such folder; give a folder of representative images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise BuildError(
            f"--images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or below it"
        )
    return files


class ImageFeeds:
    """A Polygraphy data loader: yields ``{input_name: batch}`` feed dicts of exactly ``batch_size``
    images (the last batch repeats its images to fill up: TensorRT calibrates at the profile's opt
    shape), from at most ``limit`` decodable images. Undecodable files are logged and skipped."""

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
        batch: list[np.ndarray] = []
        for x in self._prepared():
            batch.append(x)
            if len(batch) == self.batch_size:
                yield {self.input_name: np.stack(batch)}
                batch = []
        if batch:
            yield {self.input_name: np.stack([batch[i % len(batch)] for i in range(self.batch_size)])}


def rebatch(arrays: Sequence[np.ndarray], input_name: str, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Batched arrays → feed dicts of exactly ``batch_size`` items (images repeated to fill the last),
    so every feed lies inside the engine's profile."""
    items = [x for a in arrays for x in a]
    if not items:
        raise ValueError("no inputs to rebatch")
    count = -(-len(items) // batch_size) * batch_size
    cycled = [items[i % len(items)] for i in range(count)]
    return [{input_name: np.stack(cycled[i : i + batch_size])} for i in range(0, count, batch_size)]
