"""A group's pictures as ``meta build`` records them: the bytes' sha256 and size, and the size
of the image (from its header, before anything is decoded)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from clients.triton.image_sources import ImageItem
from segops.image_header import image_dimensions


@dataclass(frozen=True)
class Picture:
    item: ImageItem
    name: str  # as ret_meta and the store name it
    sha256: str
    size: int
    width: int
    height: int


def read_pictures(items: list[ImageItem]) -> tuple[list[Picture], dict[str, str]]:
    """(the pictures that can be read, image → why each of the others cannot)."""
    pictures, unreadable = [], {}
    for item in items:
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            unreadable[item.relative.as_posix()] = f"cannot read: {exc.strerror or exc}"
            continue
        size = image_dimensions(data) or _decoded_size(data)
        if size is None:
            unreadable[item.relative.as_posix()] = "not a decodable image"
            continue
        name = item.relative.as_posix()
        pictures.append(Picture(item, name, hashlib.sha256(data).hexdigest(), len(data), *size))
    return pictures, unreadable


def _decoded_size(data: bytes) -> tuple[int, int] | None:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[1]), int(image.shape[0]))
