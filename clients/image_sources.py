"""Which images to run on: a folder (``--source``) or a named group over the DATA layout.

The layout (seed 003): images under ``DATA/pictures``, group index files under ``DATA/datasets``
(``<group>.txt`` with one path per line, ``<group>.csv`` with an image/path/file column, or a
folder ``<group>/``), inference outputs under ``TEST/inference``. ``--data-root`` moves it.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from clients.triton import ClientError
from segcontract.image_files import IMAGE_SUFFIXES, image_paths, is_image_name

CSV_PATH_COLUMNS = ("image", "path", "file", "filename", "file_name", "image_path")


@dataclass(frozen=True)
class ImageItem:
    path: Path
    relative: Path  # how it is named in outputs


@dataclass(frozen=True)
class DataLayout:
    root: Path = Path(".")

    @property
    def pictures(self) -> Path:
        return self.root / "DATA" / "pictures"

    @property
    def datasets(self) -> Path:
        return self.root / "DATA" / "datasets"

    @property
    def inference(self) -> Path:
        return self.root / "TEST" / "inference"

    @property
    def masks(self) -> Path:
        return self.root / "MARKUP" / "masks"


def images_in_folder(folder: Path, exclude: Path | None = None) -> list[ImageItem]:
    """Images below ``folder``, except those below ``exclude`` (see :func:`image_paths`)."""
    if not folder.is_dir():
        raise ClientError(f"{folder}: no such folder; --source takes a folder of images")
    return [ImageItem(p, p.relative_to(folder)) for p in image_paths(folder, exclude)]


def no_images_error(folder: Path) -> ClientError:
    """What to say when ``folder`` holds nothing seg-client reads (rather than "0 written")."""
    others = sum(1 for p in folder.rglob("*") if p.is_file())
    held = f"it holds {others} other files" if others else "it is empty"
    return ClientError(
        f"{folder}: no images in it or below it ({held}); seg-client reads "
        f"{', '.join(sorted(IMAGE_SUFFIXES))}"
    )


def _csv_paths(index: Path) -> list[str]:
    with open(index, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(c) for c in CSV_PATH_COLUMNS if c in header), None)
    if column is None:  # no header we know: the first column, header row included if it is a path
        return [r[0] for r in rows if r and is_image_name(Path(r[0]))]
    return [r[column] for r in rows[1:] if len(r) > column and r[column]]


def images_in_group(group: str, layout: DataLayout) -> list[ImageItem]:
    candidates = [layout.datasets / f"{group}.txt", layout.datasets / f"{group}.csv", layout.datasets / group]
    index = next((c for c in candidates if c.exists()), None)
    if index is None:
        raise ClientError(
            f"group {group!r} not found: looked for {', '.join(str(c) for c in candidates)}; "
            "pass --data-root, or --source DIR for a plain folder"
        )
    if index.is_dir():
        return images_in_folder(index)
    if index.suffix == ".csv":
        names = _csv_paths(index)
    else:
        names = [
            line.strip()
            for line in index.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    items = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else layout.pictures / name
        relative = Path(name) if not Path(name).is_absolute() else Path(path.name)
        items.append(ImageItem(path, relative))
    return items


def _safe(relative: Path) -> Path:
    """Keep the output inside --out: drop '..', roots and drive parts."""
    parts = [p for p in relative.parts if p not in ("..", ".", "/", "\\") and not p.endswith(":")]
    return Path(*parts) if parts else Path("image")


def output_names(items: list[ImageItem]) -> dict[ImageItem, Path]:
    """``<stem>`` per image (relative folders kept), ``<name>`` where two files share a stem, and a
    short hash of the full path where even that is not unique (e.g. absolute paths in a group)."""
    safe = {item: _safe(item.relative) for item in items}
    stems: dict[Path, int] = {}
    for rel in safe.values():
        stems[rel.with_suffix("")] = stems.get(rel.with_suffix(""), 0) + 1
    names = {
        item: rel.with_suffix("") if stems[rel.with_suffix("")] == 1 else rel for item, rel in safe.items()
    }
    counts: dict[Path, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for item, name in names.items():
        if counts[name] > 1:
            digest = hashlib.sha1(str(item.path.resolve()).encode()).hexdigest()[:8]
            names[item] = name.with_name(f"{name.name}-{digest}")
    return names
