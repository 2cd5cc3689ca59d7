"""The names under which a badlist entry or a review refers to a stored image: its path, any
trailing part of it, or its stem. Standard library only, so that reading a group's badlist
(``store.badlist``) imports no database code."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath


def name_keys(path: str) -> set[str]:
    """The names under which a badlist or a review may refer to ``path``: the path, every
    trailing part of it (``b/c.jpg``, ``c.jpg``) and the file's stem."""
    pure = PurePosixPath(path)
    parts = pure.parts
    keys = {str(PurePosixPath(*parts[i:])) for i in range(len(parts))}  # "/a/b.jpg", not "//a/b.jpg"
    keys.add(pure.stem)
    keys.add(str(pure.with_suffix("")))
    return keys


def normalise_name(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def wanted_names(names: Iterable[str]) -> set[str]:
    """``names`` as a user gave them, normalised, without the empty ones."""
    return {n for n in (normalise_name(n) for n in names) if n}
