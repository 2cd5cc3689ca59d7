"""An exception as one line of a warning: training goes on without what failed (W&B, pretrained
weights) and says why in one line."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc`` (its type's name when it has no text), at most ``limit`` characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
