"""CVAT's mask encoding: ``<mask rle left top width height>`` in CVAT for images 1.1 XML, and the
``points`` of a mask shape in CVAT's API (what ``cvat_sdk.masks.encode_mask`` returns).

The mask is cropped to a box of pixels, ``left .. right`` × ``top .. bottom`` inclusive (so
``width = right - left + 1``), read row by row, and written as the lengths of its alternating runs
of 0s and 1s, the first run counting 0s (0 when the crop starts with a 1). The XML joins the runs
with ``", "`` and gives the box as ``left``, ``top``, ``width``, ``height``; the API appends
``left, top, right, bottom`` to the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotations.errors import AnnotationFormatError


@dataclass(frozen=True)
class CvatMask:
    """A mask as CVAT holds it: run lengths over the crop, row by row, 0s first."""

    runs: tuple[int, ...]
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width - 1

    @property
    def bottom(self) -> int:
        return self.top + self.height - 1

    def rle_text(self) -> str:
        """The XML's ``rle`` attribute."""
        return ", ".join(map(str, self.runs))

    def points(self) -> list[int]:
        """The API's ``points``: the runs, then ``left, top, right, bottom``."""
        return [*self.runs, self.left, self.top, self.right, self.bottom]

    @classmethod
    def from_points(cls, points: Sequence[float]) -> CvatMask:
        """The mask of an API ``points`` list (whole numbers, the last four the box)."""
        if len(points) < 5:
            raise AnnotationFormatError(f"a CVAT mask has runs and a box: {len(points)} numbers are too few")
        *runs, left, top, right, bottom = (_whole(v) for v in points)
        return cls(tuple(runs), left, top, right - left + 1, bottom - top + 1)

    @classmethod
    def from_xml(cls, rle: str, left: str, top: str, width: str, height: str) -> CvatMask:
        """The mask of a ``<mask>`` element's attributes (as text)."""
        runs = tuple(_whole(v) for v in rle.split(",") if v.strip())
        return cls(runs, *(_whole(v) for v in (left, top, width, height)))


def _whole(value: object) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AnnotationFormatError(f"a CVAT mask holds whole numbers, not {value!r}") from None
    if not number.is_integer():
        raise AnnotationFormatError(f"a CVAT mask holds whole numbers, not {value!r}")
    return int(number)


def _runs(flat: np.ndarray) -> tuple[int, ...]:
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return tuple([0, *runs] if flat[0] else runs)


def encode_cvat_mask(mask: np.ndarray, box: tuple[int, int, int, int] | None = None) -> CvatMask | None:
    """CVAT's encoding of ``mask`` (anything non-zero is inside) over ``box`` = ``(left, top, right,
    bottom)``, inclusive pixels; without a box, over the mask's own bounding box, and None for an
    empty mask (CVAT has no empty mask shape)."""
    inside = np.asarray(mask) > 0
    if inside.ndim != 2:
        raise ValueError(f"a mask has 2 dimensions, not {inside.ndim}")
    if box is None:
        rows, cols = np.nonzero(inside)
        if rows.size == 0:
            return None
        box = (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))
    left, top, right, bottom = box
    height, width = inside.shape
    if not (0 <= left <= right < width and 0 <= top <= bottom < height):
        raise ValueError(f"box {box} is not inside the {width}×{height} mask")
    flat = inside[top : bottom + 1, left : right + 1].ravel()
    return CvatMask(_runs(flat), left, top, right - left + 1, bottom - top + 1)


def decode_cvat_mask(encoded: CvatMask, height: int, width: int) -> np.ndarray:
    """The boolean mask (height × width) of a CVAT mask on an image of that size."""
    left, top, right, bottom = encoded.left, encoded.top, encoded.right, encoded.bottom
    if not (0 <= left <= right < width and 0 <= top <= bottom < height):
        raise AnnotationFormatError(
            f"CVAT mask box left {left}, top {top}, width {encoded.width}, height {encoded.height} "
            f"is not inside the {width}×{height} image"
        )
    runs = np.asarray(encoded.runs, dtype=np.int64)
    if (runs < 0).any():
        raise AnnotationFormatError("a CVAT mask's run lengths cannot be negative")
    if int(runs.sum()) != encoded.width * encoded.height:
        raise AnnotationFormatError(
            f"a CVAT mask's runs cover {int(runs.sum())} pixels, its {encoded.width}×{encoded.height} "
            f"box {encoded.width * encoded.height}"
        )
    crop = np.repeat(np.arange(runs.size) % 2 == 1, runs).reshape(encoded.height, encoded.width)
    mask = np.zeros((height, width), bool)
    mask[top : bottom + 1, left : right + 1] = crop
    return mask
