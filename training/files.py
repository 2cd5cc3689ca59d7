"""File helpers the converters share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_or_copy(src: Path, dst: Path, copy: bool = False) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk), falling back to a copy across filesystems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another filesystem, or links not allowed
    shutil.copy2(src, dst)
