"""Which files are images: the suffixes every command reads, and how a folder is listed."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_paths(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Images below ``folder`` in sorted order, except those below ``exclude`` (an output folder,
    whose overlays would otherwise become inputs of the next run). A symlink named like an image is
    listed even when it leads nowhere: reading it then fails, and that is reported rather than
    skipped. Raises NotADirectoryError when ``folder`` is not a folder."""
    if not folder.is_dir():
        raise NotADirectoryError(folder)
    skip = exclude.resolve() if exclude is not None else None
    return sorted(
        p
        for p in folder.rglob("*")
        if is_image_name(p) and (p.is_symlink() or p.is_file()) and not (skip is not None and _below(p, skip))
    )


def _below(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # a symlink loop: not below anything
        return False
