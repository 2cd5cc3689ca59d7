"""Per-image failures as a person reads them: the first few of each kind, then one count.

A folder of one bad kind (or a server that rejects everything) would otherwise print one line
per image and bury the summary; every failure is still listed in failures.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

# details that differ between images failing for the same reason: "(1234 bytes, starts with ...)"
_DETAILS = re.compile(r"\s*\([^)]*\)")


def failure_kind(reason: str) -> str:
    return _DETAILS.sub("", reason).strip()


@dataclass
class FailureLog:
    write: Callable[[str], None]
    shown_per_kind: int = 3
    counts: dict[str, int] = field(default_factory=dict)  # kind → failures seen
    seen: set[tuple[str, str]] = field(default_factory=set)  # (image, kind) already counted

    def __call__(self, image: str, reason: str) -> None:
        """Count ``image``'s failure once per kind: the same image met again (asked twice by
        workers sharing a run, say) neither shows again nor takes another image's line."""
        kind = failure_kind(reason)
        if (image, kind) in self.seen:
            return
        self.seen.add((image, kind))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] <= self.shown_per_kind:
            self.write(f"seg-client: failed: {image}: {reason}")

    def summary(self) -> list[str]:
        """One line per kind that had more failures than were shown."""
        return [
            f"seg-client: failed: {n - self.shown_per_kind} more images: {kind}"
            for kind, n in self.counts.items()
            if n > self.shown_per_kind
        ]
