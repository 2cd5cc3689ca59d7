"""The DATA/ MARKUP/ TEST/ layout under a data root, and the named groups it holds.

A group is a named list of images under ``DATA/datasets``: ``<group>.txt`` (one path per line,
``#`` comments), ``<group>.csv`` (an ``image``/``path``/``file`` column, as ``groups pull``
writes it, or the first column) or a folder ``<group>/``. Paths are relative to ``DATA/pictures``
unless absolute.
"""

from __future__ import annotations

import csv
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from segcontract.image_files import image_paths, is_image_name
from store.errors import StoreError

DB_ENV = "SEGSTACK_DB"
DB_URL_HELP = (
    "The segment store: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/NAME "
    f"(default: ${DB_ENV}, else sqlite:///<data-root>/DATA/segments.db)."
)
CSV_PATH_COLUMNS = ("image", "path", "file", "filename", "file_name", "image_path")
CSV_LABEL_COLUMNS = ("label", "class", "category")
CSV_SPLIT_COLUMN = "split"


def csv_column(header: list[str], names: tuple[str, ...]) -> int | None:
    """The index of the first of ``names`` in a group CSV's header (lower-cased, stripped)."""
    return next((header.index(n) for n in names if n in header), None)


LAYOUT_FOLDERS = {
    "pictures": "DATA/pictures",
    "meta": "DATA/meta",
    "datasets": "DATA/datasets",
    "models": "DATA/models",
    "masks": "MARKUP/masks",
    "inference": "TEST/inference",
    "ret_meta": "TEST/ret_meta",
}


@dataclass(frozen=True)
class DataLayout:
    """The folders under ``root``: the original scripts' layout by default; ``folders`` moves any
    of them (paths relative to ``root``, or absolute), as a configuration file's ``layout:`` does."""

    root: Path = Path(".")
    folders: tuple[tuple[str, str], ...] = ()  # (name, path) pairs overriding LAYOUT_FOLDERS

    def __post_init__(self) -> None:
        unknown = sorted({name for name, _ in self.folders} - set(LAYOUT_FOLDERS))
        if unknown:
            raise ValueError(
                f"unknown layout folder {unknown[0]!r}; the folders are {', '.join(LAYOUT_FOLDERS)}"
            )

    def folder(self, name: str) -> Path:
        return self.root / dict(self.folders).get(name, LAYOUT_FOLDERS[name])

    @property
    def pictures(self) -> Path:
        return self.folder("pictures")

    @property
    def meta(self) -> Path:
        return self.folder("meta")

    @property
    def datasets(self) -> Path:
        return self.folder("datasets")

    @property
    def models(self) -> Path:
        return self.folder("models")

    @property
    def database(self) -> Path:
        """The default segment store: an SQLite file beside the pictures' folder."""
        return self.pictures.parent / "segments.db"

    @property
    def inference(self) -> Path:
        return self.folder("inference")

    @property
    def masks(self) -> Path:
        return self.folder("masks")

    @property
    def ret_meta(self) -> Path:
        return self.folder("ret_meta")


# where a store's URL came from, as its messages name it
DB_OPTION_ORIGIN = "--db"
DB_ENV_ORIGIN = f"${DB_ENV}"
DEFAULT_ORIGIN = "the default store under --data-root"


class StoreURL(str):
    """A segment store's URL that remembers where it came from (``origin``: DB_OPTION_ORIGIN,
    DB_ENV_ORIGIN or DEFAULT_ORIGIN), so that an error about it names what to change. It is the
    URL itself for everything else: a plain ``str`` anywhere a URL goes."""

    origin: str

    def __new__(cls, url: str, origin: str = DB_OPTION_ORIGIN) -> StoreURL:
        made = super().__new__(cls, url)
        made.origin = origin
        return made

    def __reduce__(self) -> tuple[type[StoreURL], tuple[str, str]]:  # a copy for another process keeps it
        return type(self), (str(self), self.origin)


def database_url(db: str | None, layout: DataLayout) -> StoreURL:
    """The segment store to open: ``--db``, else ``$SEGSTACK_DB``, else the SQLite file under the
    data root; its ``origin`` says which."""
    if db:
        return StoreURL(db, DB_OPTION_ORIGIN)
    if from_env := os.environ.get(DB_ENV):
        return StoreURL(from_env, DB_ENV_ORIGIN)
    return StoreURL(f"sqlite:///{layout.database}", DEFAULT_ORIGIN)


def url_origin(url: str) -> str:
    """Where ``url`` came from: its ``origin`` when :func:`database_url` made it; a URL passed
    as it is counts as one given with ``--db``."""
    return getattr(url, "origin", DB_OPTION_ORIGIN)


@dataclass(frozen=True)
class GroupImage:
    path: Path  # where the file is
    name: Path  # how the group names it: relative to DATA/pictures (or to the group's folder)


FOLDER_INSTEAD = "--source DIR for a plain folder"  # what infer and segments build take instead


def group_index(group: str, layout: DataLayout, instead: str | None = FOLDER_INSTEAD) -> Path:
    """The file or folder that defines ``group``; StoreError naming where it looked. ``instead``
    is what the calling command takes in place of a group, suggested when there is none (by
    default infer's ``--source``); None for a command that reads groups only (``meta build``):
    then the message says how a group is made."""
    if not group or "/" in group or group in (".", ".."):
        raise StoreError(f"{group!r} is not a group name (a name under {layout.datasets})")
    candidates = [layout.datasets / f"{group}.txt", layout.datasets / f"{group}.csv", layout.datasets / group]
    index = next((c for c in candidates if c.exists()), None)
    if index is None:
        if instead is not None:
            remedy = f"pass --data-root, or {instead}"
        else:
            remedy = (
                f"pass --data-root, pull the group (seg-client groups pull --group {shlex.quote(group)} "
                f"--manifest URL|PATH), or list its images in {candidates[0]}, one per line, relative "
                f"to {layout.pictures}"
            )
        raise StoreError(
            f"group {group!r} not found: looked for {', '.join(str(c) for c in candidates)}; {remedy}"
        )
    return index


def group_images(group: str, layout: DataLayout) -> list[GroupImage]:
    index = group_index(group, layout)
    if index.is_dir():
        return [GroupImage(p, p.relative_to(index)) for p in image_paths(index)]
    try:
        names = _csv_paths(index) if index.suffix == ".csv" else _txt_paths(index)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StoreError(
            f"{index}: cannot read group {group!r} ({exc}); it must be UTF-8 text, one image per line "
            "(or a CSV with an image column)"
        ) from None
    images = []
    for name in names:
        path = Path(name) if Path(name).is_absolute() else layout.pictures / name
        images.append(GroupImage(path, Path(path.name) if Path(name).is_absolute() else Path(name)))
    return images


def _txt_paths(index: Path) -> list[str]:
    lines = (line.strip() for line in index.read_text(encoding="utf-8-sig").splitlines())
    return [line for line in lines if line and not line.startswith("#")]  # "  # x" is a comment too


def _csv_paths(index: Path) -> list[str]:
    with open(index, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    column = csv_column(header, CSV_PATH_COLUMNS)
    if column is None:  # no header we know: the first column, header row included if it is a path
        return [r[0] for r in rows if r and is_image_name(Path(r[0]))]
    return [r[column] for r in rows[1:] if len(r) > column and r[column]]
