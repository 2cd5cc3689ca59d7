"""``seg-client evaluate`` as a library call: which truth and which results to score, and the
scores (COCOeval for instance results, accuracy and confusion for classification ones)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clients.triton.client import ClientError
from store.badlist import read_badlist
from store.layout import DataLayout

if TYPE_CHECKING:
    from clients.inference.classify_eval import ClassificationScores
    from clients.inference.coco_eval import CocoScores


@dataclass(frozen=True)
class EvaluateOptions:
    """The truth (``annotations`` for instances, ``labels`` for classification, or the group's
    CSV), the results folder (or the group's), and the store whose badlist is left out."""

    annotations: Path | None = None
    labels: Path | None = None
    split: str | None = None
    results: Path | None = None
    group: str | None = None
    data_root: Path = Path(".")
    db: str | None = None

    def usage_problem(self) -> str | None:
        """What is wrong with the combination of options, before anything is read; None if nothing."""
        if self.annotations is not None and self.labels is not None:
            return "give one of --annotations COCO.json (instances) or --labels CSV (classification)"
        if self.annotations is None and self.labels is None and self.group is None:
            return (
                "give --annotations COCO.json (instances) or --labels CSV (classification), or "
                "--group NAME for the labels in DATA/datasets/<group>.csv"
            )
        if self.results is None and self.group is None:
            return "give --results DIR, or --group NAME for TEST/inference/<group>"
        return None


def evaluate_results(options: EvaluateOptions) -> ClassificationScores | CocoScores:
    """Score the results against the truth, leaving out the images on the badlist now (with a
    group, or a store named)."""
    layout = DataLayout(options.data_root)
    labels = options.labels
    if options.annotations is None and labels is None:
        labels = _group_labels(layout, options.group)
    results = options.results or _group_results(layout, options.group)
    # a group's images (or a store named): not a COCO file of some other dataset, whose stems
    # could match the badlist's by chance
    read = options.group is not None or options.db is not None
    badlist = read_badlist(options.db, layout) if read else None
    left_out = (lambda image: badlist.holds(image)) if badlist is not None else (lambda image: False)
    if labels is not None:
        from clients.inference.classify_eval import evaluate_labels

        return evaluate_labels(labels, results, options.split, left_out)
    from clients.inference.coco_eval import evaluate

    return evaluate(options.annotations, results, left_out)


def format_report(scores: ClassificationScores | CocoScores) -> str:
    from clients.inference.classify_eval import ClassificationScores, format_scores
    from clients.inference.coco_eval import format_coco_scores

    return format_scores(scores) if isinstance(scores, ClassificationScores) else format_coco_scores(scores)


def _group_labels(layout: DataLayout, group: str) -> Path:
    labels = layout.datasets / f"{group}.csv"
    if not labels.is_file():
        raise ClientError(
            f"{labels}: no such file; --group {group} reads its labels there (`seg-client groups "
            "pull` writes it), else give --labels CSV or --annotations COCO.json"
        )
    return labels


def _group_results(layout: DataLayout, group: str) -> Path:
    results = layout.inference / group
    if not results.is_dir():
        raise ClientError(f"{results}: no results; run `seg-client infer --group {group}` first")
    return results
