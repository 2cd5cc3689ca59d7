"""The pictures the review page shows: stored pictures, crops of their segments, outlines, views.

Every path here comes from a store row (``StoredImage.path``), never from a request; it is still
refused when it leads out of the pictures' folder, so that a tampered row cannot serve any file.

What is cut is cut once and cached below ``cache_root/<sha256[:2]>/<sha256>/``, keyed by the
picture's content: a crop's name holds the segment's id and a fingerprint of its mask and class,
so a corrected segment gets a new crop and the old one is simply never asked for again. Files are
written atomically; a per-picture lock keeps two threads from decoding the same picture at once.
A cached crop is served without opening the picture again: it shows what the segment was made on.
"""

from __future__ import annotations

import hashlib
import math
import re
import stat
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from annotations.polygons import flat, mask_polygons
from segcontract.errors import SegstackError
from segcontract.files import write_atomic
from segops.decode import ImageDecodeError, decode_image
from segops.rle import decode_window
from store.records import StoredImage, StoredSegment

MIN_MARGIN_PX = 16
MAX_UPSCALE = 4.0
OUTLINE_POINTS = 200  # per segment, for the browser's SVG overlay
OUTLINE_CACHE_SIZE = 4096
CROP_OUTLINE_POINTS = 4096  # the crop's own outline: exact unless a mask is very ragged
FILL_ALPHA = 0.4
OUTLINE_PX = 2
_SHIFT = 4  # fractional bits of the outline's vertices (cv2.polylines)

# saturated colours (BGR), one per class id modulo their count
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 0),
    (0, 128, 255),
    (0, 255, 0),
    (255, 64, 64),
    (64, 64, 255),
    (255, 128, 192),
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
# JPEG frame headers every browser decodes: baseline, extended and progressive Huffman
_BROWSER_JPEG_SOF = {0xC0, 0xC1, 0xC2}
_OTHER_JPEG_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}


class PictureError(SegstackError):
    """A stored picture that cannot be shown: outside the pictures' folder, missing, unreadable,
    or no longer the file the store recorded."""


def fingerprint(segment: StoredSegment) -> str:
    """12 hex digits that change with the segment's mask or class (``NewSegment.fingerprint``'s)."""
    counts = segment.rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode()
    return hashlib.sha1(f"{segment.class_id}|{counts}".encode()).hexdigest()[:12]


def _rle(segment: StoredSegment) -> dict:
    counts = segment.rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode()
    return {"size": list(segment.rle["size"]), "counts": counts}


def _mask_window(segment: StoredSegment, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """``mask[top:bottom, left:right]`` of the segment's mask, decoded from those columns only."""
    return decode_window(_rle(segment)["counts"], int(segment.rle["size"][0]), (left, top, right, bottom))


def _window(
    bbox: tuple[float, float, float, float], height: int, width: int, margin: float
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the box grown by ``margin`` of its size (16 px at least) on each
    side, rounded outwards, clipped to the image, at least one pixel wide and high."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    dx = max(margin * max(x2 - x1, 0.0), MIN_MARGIN_PX)
    dy = max(margin * max(y2 - y1, 0.0), MIN_MARGIN_PX)
    left = min(max(math.floor(x1 - dx), 0), width - 1)
    top = min(max(math.floor(y1 - dy), 0), height - 1)
    right = max(min(math.ceil(x2 + dx), width), left + 1)
    bottom = max(min(math.ceil(y2 + dy), height), top + 1)
    return left, top, right, bottom


def _outline_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black around a light fill, white around a dark one."""
    blue, green, red = fill
    return (0, 0, 0) if 0.114 * blue + 0.587 * green + 0.299 * red >= 128 else (255, 255, 255)


def _resized(pixels: np.ndarray, size: tuple[int, int], factor: int) -> np.ndarray:
    """``pixels`` (sides multiples of ``factor``) resized to ``size``: shrunk first by the whole
    ``factor`` (OpenCV averages whole blocks several times faster than it resizes by a fraction),
    then by area averaging, or enlarged bilinearly."""
    if factor > 1:
        whole = (pixels.shape[1] // factor, pixels.shape[0] // factor)
        pixels = cv2.resize(pixels, whole, interpolation=cv2.INTER_AREA)
    interpolation = cv2.INTER_AREA if size[0] < pixels.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(pixels, size, interpolation=interpolation)


def draw_segment(region: np.ndarray, inside: np.ndarray, size: tuple[int, int], class_id: int) -> np.ndarray:
    """``region`` (BGR) resized to ``size`` (width, height) with ``inside`` (its mask, same shape)
    over it: a translucent fill in the class's colour, and a 2-px outline that contrasts with it.

    The fill is resized as coverage (soft edges); the outline is the mask's exact pixel outline
    scaled to the crop, so it is as sharp at 1/20 of the picture as at 4×. Shrinking by a whole
    factor first leaves out the last ``factor - 1`` rows and columns at most: less than a pixel
    of the crop."""
    out_w, out_h = size
    factor = max(1, min(inside.shape[1] // out_w, inside.shape[0] // out_h))
    height, width = inside.shape[0] // factor * factor, inside.shape[1] // factor * factor
    region, inside = region[:height, :width], inside[:height, :width]
    picture = _resized(region, size, factor).astype(np.float32)
    # the mask is decoded column-major: its transpose is row-major, and resized without a copy
    coverage = _resized(inside.T * np.uint8(255), (out_h, out_w), factor).T
    fill = _PALETTE[class_id % len(_PALETTE)]
    alpha = (FILL_ALPHA / 255) * coverage[..., None].astype(np.float32)
    drawn = np.rint(picture * (1 - alpha) + np.array(fill, np.float32) * alpha).astype(np.uint8)
    scale = np.array([out_w / width, out_h / height])
    # outline vertices are pixel corners; cv2 draws in pixel-centre coordinates, half a pixel off
    lines = [
        np.rint((p * scale - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        for p in mask_polygons(inside, max_points=CROP_OUTLINE_POINTS)
    ]
    if lines:
        cv2.polylines(drawn, lines, True, _outline_color(fill), OUTLINE_PX, cv2.LINE_AA, _SHIFT)
    return drawn


def _encoded_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("OpenCV could not encode a JPEG")
    return encoded.tobytes()


def _jpeg_shown(f: BinaryIO) -> bool:
    """Whether the JPEG open in ``f`` (just past its SOI) is one a browser shows as OpenCV decodes
    it: 8-bit, Huffman-coded, gray or colour (not CMYK, not 12-bit, lossless or arithmetic)."""
    while True:
        head = f.read(2)
        if len(head) < 2 or head[0] != 0xFF:
            return False
        marker = head[1]
        if marker == 0xFF:
            f.seek(-1, 1)
            continue
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xD9, 0xDA):
            return False
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return False
        length = int.from_bytes(length_bytes, "big")
        if marker in _BROWSER_JPEG_SOF or marker in _OTHER_JPEG_SOF:
            frame = f.read(6)  # precision, height, width, components
            return marker in _BROWSER_JPEG_SOF and len(frame) == 6 and frame[0] == 8 and frame[5] in (1, 3)
        f.seek(length - 2, 1)


def browser_type(path: Path) -> str | None:
    """The media type of a picture a browser shows as it is (JPEG, 8-bit PNG, WebP), else None."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head.startswith(b"\xff\xd8"):
            f.seek(2)
            return "image/jpeg" if _jpeg_shown(f) else None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return "image/png" if head[24] <= 8 else None  # bit depth: 16 becomes a JPEG a fraction the size
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class Pictures:
    """The pictures below ``pictures_root``, and their crops and views cached below ``cache_root``.

    Safe to share between the threads of a web server."""

    def __init__(
        self,
        pictures_root: Path,
        cache_root: Path,
        crop_size: int = 224,
        margin: float = 0.25,
        jpeg_quality: int = 85,
    ) -> None:
        if crop_size < 1:
            raise ValueError(f"a crop is 1 pixel at least, not {crop_size}")
        self.pictures_root = Path(pictures_root)
        self.cache_root = Path(cache_root)
        self.crop_size = crop_size
        self.margin = margin
        self.jpeg_quality = jpeg_quality
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self._outlines: OrderedDict[tuple[int, str], tuple[tuple[float, ...], ...]] = OrderedDict()
        self._outlines_guard = threading.Lock()

    # --- the picture itself -------------------------------------------------------------------

    def file(self, image: StoredImage) -> Path:
        """The picture's file, resolved; PictureError when it is outside the pictures' folder
        (``..``, an absolute path, a symlink out), missing, or not the size the store recorded."""
        name = PurePosixPath(image.path)
        if not image.path or name.is_absolute() or ".." in name.parts:
            raise PictureError(f"image {image.id}: {image.path!r} is not a path inside the pictures' folder")
        root = self.pictures_root.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise PictureError(f"image {image.id}: {image.path} leads out of the pictures' folder {root}")
        try:
            facts = path.stat()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise PictureError(f"image {image.id}: {image.path} is missing from {root} ({reason})") from None
        if not stat.S_ISREG(facts.st_mode):
            raise PictureError(f"image {image.id}: {image.path} is not a file")
        if facts.st_size != image.size:
            raise PictureError(
                f"image {image.id}: {image.path} is {facts.st_size} bytes, the store recorded {image.size}: "
                "the picture changed since it was segmented"
            )
        return path

    def _decoded(self, image: StoredImage) -> np.ndarray:
        """The picture's pixels (BGR), decoded as the server decoded them for its segments."""
        path = self.file(image)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PictureError(f"image {image.id}: cannot read {image.path} ({exc.strerror})") from None
        if hashlib.sha256(data).hexdigest() != image.sha256:
            raise PictureError(
                f"image {image.id}: {image.path} is not the picture the store recorded (another sha256): "
                "the picture changed since it was segmented"
            )
        try:
            pixels = decode_image(data)
        except ImageDecodeError as exc:
            raise PictureError(f"image {image.id}: {image.path} is {exc}") from None
        if pixels.shape[:2] != (image.height, image.width):
            raise PictureError(
                f"image {image.id}: {image.path} decodes to {pixels.shape[1]}x{pixels.shape[0]}, "
                f"the store recorded {image.width}x{image.height}"
            )
        return pixels

    def _folder(self, image: StoredImage) -> Path:
        if not _SHA256.fullmatch(image.sha256):
            raise PictureError(f"image {image.id}: {image.sha256!r} is not a sha256")
        return self.cache_root / image.sha256[:2] / image.sha256

    def _lock(self, image: StoredImage) -> threading.Lock:
        """The lock of one picture's cache folder (held while its crops or views are cut)."""
        with self._locks_guard:
            lock = self._locks.get(image.sha256)
            if lock is None:
                lock = self._locks[image.sha256] = threading.Lock()
            return lock

    # --- crops --------------------------------------------------------------------------------

    def crop_path(self, segment: StoredSegment, image: StoredImage) -> Path:
        """Where the segment's crop is cached (whether or not it is cut yet)."""
        return self._folder(image) / f"{segment.id}-{fingerprint(segment)}.jpg"

    def crop(self, segment: StoredSegment, image: StoredImage) -> Path:
        """The segment's crop (JPEG), cut now unless it is cached."""
        return self.cut_crops(image, [segment])[segment.id]

    def cut_crops(self, image: StoredImage, segments: Sequence[StoredSegment]) -> dict[int, Path]:
        """segment id → its crop, for segments of ``image``: those not cached yet are cut from one
        decoding of the picture (a 12-megapixel JPEG takes ~50-100 ms to decode)."""
        for segment in segments:
            if segment.image_id != image.id:
                raise ValueError(f"segment {segment.id} is of image {segment.image_id}, not {image.id}")
        paths = {s.id: self.crop_path(s, image) for s in segments}
        if all(p.exists() for p in paths.values()):
            return paths
        with self._lock(image):
            todo = {s.id: s for s in segments if not paths[s.id].exists()}
            if todo:
                pixels = self._decoded(image)
                for segment in todo.values():
                    write_atomic(paths[segment.id], self._cut(pixels, segment))
        return paths

    def _cut(self, pixels: np.ndarray, segment: StoredSegment) -> bytes:
        height, width = pixels.shape[:2]
        if list(segment.rle["size"]) != [height, width]:
            raise PictureError(
                f"segment {segment.id}: its mask is {segment.rle['size'][1]}x{segment.rle['size'][0]}, "
                f"its picture {width}x{height}"
            )
        left, top, right, bottom = _window(segment.bbox, height, width, self.margin)
        crop_w, crop_h = right - left, bottom - top
        scale = min(self.crop_size / max(crop_w, crop_h), MAX_UPSCALE)
        size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
        inside = _mask_window(segment, left, top, right, bottom)
        drawn = draw_segment(pixels[top:bottom, left:right], inside, size, segment.class_id)
        return _encoded_jpeg(drawn, self.jpeg_quality)

    # --- outlines -----------------------------------------------------------------------------

    def outlines(self, segment: StoredSegment) -> list[list[float]]:
        """The mask's outer polygons, ``[x1, y1, x2, y2, ...]`` in image pixels (vertices on pixel
        corners), largest first, simplified to ``OUTLINE_POINTS`` points together."""
        key = (segment.id, fingerprint(segment))
        with self._outlines_guard:
            cached = self._outlines.get(key)
            if cached is not None:
                self._outlines.move_to_end(key)
        if cached is None:
            # traced within the mask's own extent (not the stored box), then moved into place
            x, y, w, h = (int(v) for v in mask_utils.toBbox(_rle(segment)))
            window = _mask_window(segment, x, y, x + w, y + h) if w and h else None
            polygons = [] if window is None else mask_polygons(window, max_points=OUTLINE_POINTS)
            polygons = [p + np.array((x, y), np.float64) for p in polygons]
            cached = tuple(tuple(flat(p)) for p in polygons)
            with self._outlines_guard:
                self._outlines[key] = cached
                while len(self._outlines) > OUTLINE_CACHE_SIZE:
                    self._outlines.popitem(last=False)
        return [list(p) for p in cached]

    # --- the whole picture --------------------------------------------------------------------

    def view(self, image: StoredImage, max_side: int | None = None) -> tuple[Path, str]:
        """The whole picture and its media type: the file itself when a browser shows it as it is
        and it is not to be made smaller than it is; else a JPEG rendition, cut once (``view.jpg``,
        or ``view-<max_side>.jpg`` when downscaled to ``max_side`` on its longer side)."""
        if max_side is not None and max_side < 1:
            raise ValueError(f"a view is 1 pixel at least, not {max_side}")
        path = self.file(image)
        downscaled = max_side is not None and max_side < max(image.width, image.height)
        try:
            media_type = browser_type(path)
        except OSError as exc:
            raise PictureError(f"image {image.id}: cannot read {image.path} ({exc.strerror})") from None
        if media_type is not None and not downscaled:
            return path, media_type
        target = self._folder(image) / (f"view-{max_side}.jpg" if downscaled else "view.jpg")
        if not target.exists():
            with self._lock(image):
                if not target.exists():
                    pixels = self._decoded(image)
                    if downscaled:
                        scale = max_side / max(image.width, image.height)
                        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
                    write_atomic(target, _encoded_jpeg(pixels, self.jpeg_quality))
        return target, "image/jpeg"
