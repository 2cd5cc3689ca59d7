"""How doubtful each stored segment is, from what the store already holds, so that the review queue
shows the segments most likely to be wrong first.

Three terms, each in [0, 1] (1 = most doubtful):

- score: the detector's score near its threshold (a borderline detection);
- margin: the classifier's top two classes close together (run by ``seg-client meta build``; only
  segments it was run on have one);
- overlap: the mask overlaps a segment of another class in the same image, from the same model
  (two labels for one object: at least one of them is wrong).

A segment's doubt is the largest of its terms: doubtful for any one reason is doubtful.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from store.records import Status, StoredSegment

NOTABLE = 0.5  # a term above this earns a reason on the page
SCORE_SPAN = 0.5  # the score term falls from 1 at the threshold to 0 this far from it


class Order(str, Enum):
    UNCERTAINTY = "uncertainty"  # the most doubtful first
    SCORE = "score"  # the lowest score first
    IMAGE = "image"  # image by image, as the store names them


@dataclass(frozen=True)
class Doubt:
    segment_id: int
    value: float  # max of the terms, in [0, 1]
    score_term: float
    margin_term: float | None  # None: no classifier result for this segment
    overlap_term: float  # the largest mask IoU with a segment of another class
    overlap_with: str | None = None  # that segment's class
    margin_detail: str | None = None  # "cat 0.48 vs dog 0.41"
    score: float | None = None
    threshold: float | None = None

    def reasons(self) -> list[str]:
        """Short reasons for the terms that are notable, the strongest first."""
        found: list[tuple[float, str]] = []
        if self.score_term > NOTABLE and self.score is not None and self.threshold is not None:
            found.append((self.score_term, f"score {self.score:.2f} near threshold {self.threshold:g}"))
        if self.margin_term is not None and self.margin_term > NOTABLE:
            found.append((self.margin_term, f"classifier: {self.margin_detail or 'top two classes close'}"))
        if self.overlap_term > NOTABLE:
            other = f"a {self.overlap_with}" if self.overlap_with else "another class"
            found.append((self.overlap_term, f"overlaps {other} (IoU {self.overlap_term:.2f})"))
        return [text for _, text in sorted(found, key=lambda f: -f[0])]


def score_term(score: float | np.ndarray, threshold: float) -> float | np.ndarray:
    """1 at the threshold, falling linearly to 0 at ``SCORE_SPAN`` from it (on either side)."""
    term = np.clip(1.0 - np.abs(np.asarray(score, dtype=float) - threshold) / SCORE_SPAN, 0.0, 1.0)
    return float(term) if term.ndim == 0 else term


def margin_term(top1: float | np.ndarray, top2: float | np.ndarray) -> float | np.ndarray:
    """1 when the classifier's top two classes tie, 0 when the first takes everything."""
    term = np.clip(1.0 - (np.asarray(top1, dtype=float) - np.asarray(top2, dtype=float)), 0.0, 1.0)
    return float(term) if term.ndim == 0 else term


def overlap_terms(segments: Sequence[StoredSegment]) -> dict[int, tuple[float, str | None]]:
    """Segment id → (largest mask IoU with a segment of the same image and model but another class,
    that segment's class name). Rejected segments are nobody's overlap: they are already decided."""
    by_image: dict[tuple[int, str], list[StoredSegment]] = defaultdict(list)
    for s in segments:
        by_image[(s.image_id, s.model)].append(s)
    found: dict[int, tuple[float, str | None]] = {}
    for group in by_image.values():
        if len(group) > 1:
            found.update(_overlaps_in_image(group))
    return found


def _overlaps_in_image(group: list[StoredSegment]) -> dict[int, tuple[float, str | None]]:
    """The overlap terms within one image: only the pairs of other classes whose boxes intersect
    have their masks compared (one pycocotools call for the image)."""
    boxes = np.array([s.bbox for s in group], dtype=float).reshape(-1, 4)
    classes = np.array([s.class_id for s in group])
    live = np.array([s.status != Status.REJECTED for s in group])
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    meets = (
        (np.maximum(x1[:, None], x1[None, :]) < np.minimum(x2[:, None], x2[None, :]))
        & (np.maximum(y1[:, None], y1[None, :]) < np.minimum(y2[:, None], y2[None, :]))
        & (classes[:, None] != classes[None, :])
        & live[None, :]
    )
    rows = np.flatnonzero(meets.any(axis=1))
    if rows.size == 0:
        return {}
    cols = np.flatnonzero(meets[rows].any(axis=0))
    rles = [s.rle for s in group]
    iou = np.asarray(
        mask_utils.iou([rles[i] for i in rows], [rles[j] for j in cols], [0] * len(cols)), dtype=float
    ).reshape(len(rows), len(cols))
    iou = np.where(meets[np.ix_(rows, cols)], np.nan_to_num(iou), 0.0)
    best = iou.argmax(axis=1)
    found: dict[int, tuple[float, str | None]] = {}
    for k, r in enumerate(rows):
        value = float(iou[k, best[k]])
        if value > 0:
            found[group[r].id] = (value, group[cols[best[k]]].class_name)
    return found


def read_classifier_margins(folder: Path) -> dict[int, tuple[float, float, str]]:
    """Segment id → (top1, top2, "cat 0.48 vs dog 0.41") from the JSON files ``seg-client meta build``
    wrote under ``folder`` (recursively). A file that is not such a JSON is skipped, and so is an
    entry that is not; segments with fewer than two scored classes are left out."""
    margins: dict[int, tuple[float, float, str]] = {}
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        entries = data.get("segments") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            continue
        for entry in entries:
            found = _entry_margin(entry)
            if found is not None:
                margins[found[0]] = found[1]
    return margins


def _entry_margin(entry: object) -> tuple[int, tuple[float, float, str]] | None:
    if not isinstance(entry, dict):
        return None
    segment_id = entry.get("segment_id")
    classes = entry.get("classes")
    if not isinstance(segment_id, int) or isinstance(segment_id, bool) or not isinstance(classes, list):
        return None
    scored: list[tuple[float, str]] = []
    for c in classes:
        if not isinstance(c, dict):
            continue
        score = c.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
            continue
        name = c.get("class_name")
        scored.append((float(score), str(name if name is not None else c.get("class_id", "?"))))
    if len(scored) < 2:
        return None
    # ranked best first already; sorting (stable) only guards against a file that is not
    (s1, n1), (s2, n2) = sorted(scored, key=lambda c: -c[0])[:2]
    return segment_id, (s1, s2, f"{n1} {s1:.2f} vs {n2} {s2:.2f}")


def rank(
    segments: Sequence[StoredSegment],
    order: Order = Order.UNCERTAINTY,
    threshold: float = 0.5,
    margins: Mapping[int, tuple[float, float, str]] | None = None,
) -> list[Doubt]:
    """Every segment's doubt, in ``order``: uncertainty by doubt (highest first; ties: lower score,
    then id), score by score (lowest first, then id), image by image path, then id."""
    segments = list(segments)
    if not segments:
        return []
    margins = margins or {}
    ids = np.array([s.id for s in segments], dtype=np.int64)
    scores = np.array([s.score for s in segments], dtype=float)
    score_terms = score_term(scores, threshold)
    tops = np.array([margins.get(s.id, (np.nan, np.nan))[:2] for s in segments], dtype=float)
    margin_terms = margin_term(tops[:, 0], tops[:, 1])  # NaN where no classifier result
    overlaps = overlap_terms(segments)
    overlap_values = np.array([overlaps.get(s.id, (0.0, None))[0] for s in segments], dtype=float)
    values = np.fmax(np.maximum(score_terms, overlap_values), margin_terms)
    if order == Order.UNCERTAINTY:
        positions = np.lexsort((ids, scores, -values))
    elif order == Order.SCORE:
        positions = np.lexsort((ids, scores))
    else:
        positions = sorted(range(len(segments)), key=lambda k: (segments[k].image, segments[k].id))
    doubts = []
    for k in positions:
        s = segments[k]
        margin = None if np.isnan(margin_terms[k]) else float(margin_terms[k])
        doubts.append(
            Doubt(
                segment_id=s.id,
                value=float(values[k]),
                score_term=float(score_terms[k]),
                margin_term=margin,
                overlap_term=float(overlap_values[k]),
                overlap_with=overlaps.get(s.id, (0.0, None))[1],
                margin_detail=margins[s.id][2] if margin is not None else None,
                score=s.score,
                threshold=threshold,
            )
        )
    return doubts
