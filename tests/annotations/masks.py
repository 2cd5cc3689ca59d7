"""Generated masks for the property tests: every kind a format must carry, from a seeded RNG.

``generated_masks()`` gives (kind, mask) pairs, uint8 0/1, made once per test session. The kinds:
every mask up to 2×2, empty, full frame, one pixel, touching every border, with holes, several
components, random blobs, thin lines, 1×N and N×1 strips, salt-and-pepper noise, and large blobs
whose outlines are past the CVAT point budget."""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

Maker = Callable[[np.random.Generator], np.ndarray]
COUNT_PER_KIND = 200
LARGE_COUNT = 24


def _size(rng: np.random.Generator, low: int = 1, high: int = 48) -> tuple[int, int]:
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def empty(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(_size(rng), np.uint8)


def full(rng: np.random.Generator) -> np.ndarray:
    return np.ones(_size(rng), np.uint8)


def one_pixel(rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(_size(rng), np.uint8)
    mask[rng.integers(mask.shape[0]), rng.integers(mask.shape[1])] = 1
    return mask


def every_border(rng: np.random.Generator) -> np.ndarray:
    """A cross through the whole frame, or the frame's outer ring (a ring has a hole)."""
    h, w = _size(rng, 3)
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        mask[rng.integers(h), :] = 1
        mask[:, rng.integers(w)] = 1
    else:
        mask[[0, -1], :] = 1
        mask[:, [0, -1]] = 1
    return mask


def _disc(mask: np.ndarray, rng: np.random.Generator, value: int) -> None:
    h, w = mask.shape
    centre = (int(rng.integers(w)), int(rng.integers(h)))
    cv2.circle(mask, centre, int(rng.integers(1, max(2, min(h, w) // 3))), value, -1)


def with_holes(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng, 8)
    mask = np.zeros((h, w), np.uint8)
    mask[1 : h - 1, 1 : w - 1] = 1
    for _ in range(int(rng.integers(1, 4))):
        y, x = int(rng.integers(2, h - 2)) if h > 4 else 1, int(rng.integers(2, w - 2)) if w > 4 else 1
        mask[y : y + int(rng.integers(1, 3)), x : x + int(rng.integers(1, 3))] = 0
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    return mask


def several_components(rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(_size(rng, 6, 64), np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        if rng.random() < 0.5:
            _disc(mask, rng, 1)
        else:
            h, w = mask.shape
            x, y = int(rng.integers(w)), int(rng.integers(h))
            mask[y : y + int(rng.integers(1, 12)), x : x + int(rng.integers(1, 12))] = 1
    return mask


def _blob(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), blur)
    return (noise > np.quantile(noise, rng.uniform(0.3, 0.8))).astype(np.uint8)


def random_blobs(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng, 4, 64)
    return _blob(rng, h, w, rng.uniform(1.5, 4.0))


def thin_lines(rng: np.random.Generator) -> np.ndarray:
    h, w = _size(rng, 2, 64)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        start = (int(rng.integers(w)), int(rng.integers(h)))
        end = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.line(mask, start, end, 1, 1, lineType=cv2.LINE_8)
    return mask


def _some(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask with at least one pixel set."""
    mask.flat[rng.integers(mask.size)] = 1
    return mask


def strip(rng: np.random.Generator) -> np.ndarray:
    """1×N or N×1, random runs."""
    n = int(rng.integers(1, 80))
    line = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(np.uint8)
    return _some(line.reshape(1, n) if rng.random() < 0.5 else line.reshape(n, 1), rng)


def noise(rng: np.random.Generator) -> np.ndarray:
    return _some((rng.random(_size(rng)) < rng.uniform(0.05, 0.6)).astype(np.uint8), rng)


def large_blob(rng: np.random.Generator) -> np.ndarray:
    """A few big smooth blobs (300 × 400), their holes filled: exact outlines of thousands of points."""
    return filled(_blob(rng, 300, 400, rng.uniform(12.0, 20.0)))


KINDS: dict[str, Maker] = {
    "empty": empty,
    "full": full,
    "one pixel": one_pixel,
    "every border": every_border,
    "with holes": with_holes,
    "several components": several_components,
    "random blobs": random_blobs,
    "thin lines": thin_lines,
    "strip": strip,
    "noise": noise,
}


def tiny() -> list[np.ndarray]:
    """Every mask of 1×1, 1×2, 2×1 and 2×2 pixels (diagonal pairs among them)."""
    masks = []
    for shape in ((1, 1), (1, 2), (2, 1), (2, 2)):
        size = shape[0] * shape[1]
        masks += [
            np.array([(n >> i) & 1 for i in range(size)], np.uint8).reshape(shape) for n in range(2**size)
        ]
    return masks


@functools.cache
def generated_masks() -> tuple[tuple[str, np.ndarray], ...]:
    """Every tiny mask, COUNT_PER_KIND masks of each kind, and LARGE_COUNT large blobs (2,050)."""
    rng = np.random.default_rng(20240611)
    masks = [("tiny", mask) for mask in tiny()]
    masks += [(kind, make(rng)) for kind, make in KINDS.items() for _ in range(COUNT_PER_KIND)]
    masks += [("large blob", large_blob(rng)) for _ in range(LARGE_COUNT)]
    return tuple(masks)


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled: background pixels not 4-connected to the outside become 1
    (the outside is the padding around the frame)."""
    padded = np.pad(mask > 0, 1).astype(np.uint8)
    _, labels = cv2.connectedComponents(1 - padded, connectivity=4)
    return (labels != labels[0, 0])[1:-1, 1:-1].astype(np.uint8)
