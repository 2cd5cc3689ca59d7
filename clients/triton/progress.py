"""How a long run shows the person running it how it goes: a bar per pass over the images, and
lines written above it.

Library functions take a :data:`Progress` (``no_progress`` by default), so that they know
nothing of terminals; the commands pass :func:`progress_bar` and :func:`above_bars`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from tqdm import tqdm

Advance = Callable[[int], None]
# (what the pass does, how many images it covers) → a context that yields the pass's advance
Progress = Callable[[str, int], AbstractContextManager[Advance]]


@contextmanager
def no_progress(desc: str, total: int) -> Iterator[Advance]:
    yield lambda n: None


@contextmanager
def progress_bar(desc: str, total: int, *, unit: str = "img", leave: bool = True) -> Iterator[Advance]:
    """A tqdm bar on stderr; ``leave=False``: it goes when its pass ends (one of several in turn)."""
    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave) as bar:
        yield bar.update


def above_bars(line: str) -> None:
    """``line`` on stderr, above the bar being drawn rather than through it."""
    tqdm.write(line, file=sys.stderr)


@dataclass
class Tally:
    """An :data:`Advance` that counts, so that a pass can be completed at its end: in a shared run
    the images done by the other workers never pass through this one."""

    advance: Advance
    done: int = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.advance(n)

    def complete(self, total: int) -> None:
        self(total - self.done)
