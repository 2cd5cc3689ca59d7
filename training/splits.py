"""The deterministic train/val partition every converter and trainer uses."""

from __future__ import annotations

import hashlib


def val_indices(keys: list[str], val_fraction: float, seed: int = 0) -> set[int]:
    """Indices of the keys in val: keys ordered by a seeded hash, the first fraction taken. An
    item's side depends only on its key and the seed; with a fraction > 0 and two or more items,
    each side gets at least one."""
    order = sorted(range(len(keys)), key=lambda i: hashlib.sha256(f"{seed}:{keys[i]}".encode()).hexdigest())
    n_val = round(len(keys) * val_fraction)
    if val_fraction > 0 and len(keys) > 1:
        n_val = min(max(n_val, 1), len(keys) - 1)
    return set(order[:n_val])
