"""Which files are images: the formats every command reads (not GIF), and how a folder is listed."""

from __future__ import annotations

from pathlib import Path

# The formats every command reads (the server decodes them: segops.decode), with their suffixes.
# Not GIF: the server's OpenCV (opencv-python-headless before 4.12, the last for numpy 1) has no GIF
# decoder, so every command refuses one with the same reason (segops.decode.unread_format).
IMAGE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "BMP": (".bmp",),
    "WebP": (".webp",),
    "TIFF": (".tif", ".tiff"),
}
IMAGE_SUFFIXES = frozenset(suffix for suffixes in IMAGE_FORMATS.values() for suffix in suffixes)
# images no command reads: a folder's are listed all the same, so that each is reported with the reason
REFUSED_SUFFIXES = frozenset({".gif"})


def format_names() -> str:
    """The formats in words, for messages: "JPEG, PNG, BMP, WebP, GIF or TIFF"."""
    *others, last = IMAGE_FORMATS
    return f"{', '.join(others)} or {last}"


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
        if (is_image_name(p) or p.suffix.lower() in REFUSED_SUFFIXES)
        and (p.is_symlink() or p.is_file())
        and not (skip is not None and _below(p, skip))
    )


def _below(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # a symlink loop: not below anything
        return False
