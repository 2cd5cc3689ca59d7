"""Finding stored images by the names users give (``store.names``: a path, a trailing part of it,
or a stem), for the badlist and the review."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.names import name_keys, wanted_names
from store.schema import Image


def images_matching(session: Session, names: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The stored images (id, path) each of ``names`` matches, by path (names matching none
    left out)."""
    found: dict[str, list[tuple[int, str]]] = {}
    if names:
        for image_id, path in session.execute(select(Image.id, Image.path).order_by(Image.path)):
            for name in name_keys(path) & names:
                found.setdefault(name, []).append((image_id, path))
    return found


def image_ids_matching(session: Session, names: set[str]) -> tuple[list[int], set[str]]:
    """Image ids whose name keys meet ``names``, and which names met one."""
    found = images_matching(session, names)
    return sorted({image_id for images in found.values() for image_id, _ in images}), set(found)


def find_ambiguous_names(session: Session, names: Iterable[str]) -> dict[str, list[str]]:
    """The names among ``names`` that match more than one stored image, with those images."""
    found = images_matching(session, wanted_names(names))
    return {name: sorted(path for _, path in images) for name, images in found.items() if len(images) > 1}
