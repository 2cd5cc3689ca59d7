"""Class colour tables: seed 001's colors.csv, and the PASCAL VOC palette (segops.colors)."""

from __future__ import annotations

import csv
from pathlib import Path

from segcontract.errors import SegstackError
from segops.colors import voc_palette

__all__ = ["ColorTableError", "read_colors_csv", "voc_palette"]


class ColorTableError(SegstackError, ValueError):
    """A colors.csv that cannot be read; the message names the file."""


def read_colors_csv(path: Path) -> list[tuple[str | None, tuple[int, int, int]]]:
    """Rows ``name,r,g,b`` (or bare ``r,g,b``, name None), in class order; a header row is skipped."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows and not rows[0][-1].strip().isdigit():
        rows = rows[1:]
    table = []
    for row in rows:
        try:
            rgb = (int(row[-3]), int(row[-2]), int(row[-1]))
        except (ValueError, IndexError):
            raise ColorTableError(f"{path}: row {row} is not name,r,g,b") from None
        table.append((row[0].strip() if len(row) >= 4 else None, rgb))
    return table
