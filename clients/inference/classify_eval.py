"""Score seg-client's classification records against a labels CSV (``seg-client evaluate --labels``).

The records are the per-image JSON files ``seg-client infer`` writes for a classification model,
anywhere below the results folder (``failures.json`` and hidden files are skipped). A record either
classifies the whole image (``classes``, best first: one scored sample) or each stored segment of it
(``segments``, each with its own ``classes``: one scored sample per segment, all labelled with the
image's label). The prediction of a sample is its first class's ``class_name``. Records of the other
tasks (``detections``, ``mask``) are refused.

The labels CSV has a header with at least ``image`` and ``label`` (other columns, e.g. ``split``, are
ignored), as ``seg-client groups pull`` writes ``DATA/datasets/<group>.csv``: ``image`` is a path
relative to ``DATA/pictures`` such as ``shapes/circle_000.png``. A row with an empty label is not scored.

Matching a record to a CSV row, by the record's ``image``:

1. the row whose ``image`` is the same string (what ``infer --group`` writes);
2. otherwise the one row whose ``image`` ends with ``"/" + <record's image>``: a record of
   ``infer --source DATA/pictures/shapes`` names ``circle_000.png``, which matches
   ``shapes/circle_000.png``.

A record that matches no row, several rows (``a/x.png`` and ``b/x.png`` for ``x.png``), a row
without a label or an image listed twice with different labels is counted as *unlabelled*: it is
not scored. Backslashes count as ``/`` and a leading ``./`` is ignored on both sides.

The confusion matrix covers the labels of the scored samples and every predicted name, the ones the
model knows ordered by ``class_id`` (as the records give it), then the others sorted by name.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.inference.run import FAILURES_FILE
from clients.triton.client import ClientError
from store.layout import CSV_LABEL_COLUMNS, CSV_PATH_COLUMNS, CSV_SPLIT_COLUMN, csv_column

_NAME_WIDTH = 12  # longest class name in the confusion matrix's headers
_MAX_MATRIX_CLASSES = 20  # more classes than this: the most frequent confusions instead of the matrix


@dataclass
class ClassificationScores:
    samples: int  # scored samples: whole images plus segments
    images: int  # images scored (matched to a labelled CSV row)
    unlabelled: int  # records not scored: no, several or an unlabelled matching CSV row
    correct: int
    accuracy: float  # correct / samples (0.0 without samples)
    classes: list[str]
    confusion: list[list[int]]  # [true label][predicted], in the order of ``classes``
    per_class: dict[str, tuple[float, float, int]]  # name -> (precision, recall, support)
    without_segments: int = 0  # images scored by segments that have none
    without_results: int = 0  # labelled images of the CSV no record names (not run, failed)
    badlisted: int = 0  # CSV rows left out: their image is on the badlist now


def evaluate_labels(
    labels_csv: Path,
    results_dir: Path,
    split: str | None = None,
    left_out: Callable[[str], bool] = lambda image: False,
) -> ClassificationScores:
    """Accuracy, per-class precision and recall and the confusion matrix of the classification
    records below ``results_dir`` against ``labels_csv`` (matched as the module docstring says);
    ``split``: only the CSV rows of that split (e.g. ``val``). The rows whose image ``left_out``
    names (badlisted now) are not scored, nor counted as without a result."""
    labels = read_labels(labels_csv, split)
    dropped = {image for image, label in labels.items() if label and left_out(image)}
    records = _read_records(Path(results_dir))
    if not records:
        raise ClientError(
            f"{results_dir}: no result records (*.json); run `seg-client infer` with a classification "
            "model and --out there first"
        )
    match = _Matcher(labels)
    truths: list[str] = []
    predictions: list[str] = []
    class_ids: dict[str, int] = {}
    images = unlabelled = without_segments = 0
    seen: set[str] = set()
    for path, record in records:
        key = match(record["image"])
        if key in dropped:
            continue
        label = labels.get(key) if key is not None else None
        if not label:
            unlabelled += 1
            continue
        seen.add(key)
        ranked = _ranked_classes(path, record)
        if not ranked:
            without_segments += 1
            continue
        images += 1
        for classes in ranked:
            truths.append(label)
            predictions.append(classes[0]["class_name"])
            for entry in classes:
                if isinstance(entry.get("class_id"), int):
                    name = entry["class_name"]
                    class_ids[name] = min(entry["class_id"], class_ids.get(name, entry["class_id"]))
    if not seen:
        raise _nothing_matched(labels_csv, results_dir, labels, records)
    if not truths:
        raise ClientError(
            f"{results_dir}: the {without_segments} labelled images have no classified segment "
            "(no approved segments in the store); nothing to score"
        )
    scores = _scores(truths, predictions, class_ids, images, unlabelled)
    scores.without_segments = without_segments
    scores.without_results = sum(
        1 for image, label in labels.items() if label and image not in seen and image not in dropped
    )
    scores.badlisted = len(dropped)
    return scores


def read_labels(path: Path, split: str | None = None) -> dict[str, str | None]:
    """CSV image -> its label: ``""`` for a row without one, None for an image listed twice with
    different labels. The columns are found as training finds them (``image``/``path``/...,
    ``label``/``class``/...); ``split`` keeps the rows of one split."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = [name.strip().lower() for name in next(rows, [])]
            image_col = csv_column(header, CSV_PATH_COLUMNS)
            label_col = csv_column(header, CSV_LABEL_COLUMNS)
            split_col = csv_column(header, (CSV_SPLIT_COLUMN,))
            if image_col is None or label_col is None:
                raise ClientError(
                    f"{path}: a labels CSV needs an image and a label column in its header, e.g. "
                    f"image,label (columns found: {_listed(header)})"
                )
            if split is not None and split_col is None:
                raise ClientError(f"{path}: --split {split}: the CSV has no split column")
            labels: dict[str, str | None] = {}
            for row in rows:
                image = _normalized(_cell(row, image_col))
                if not image or (split is not None and _cell(row, split_col).lower() != split.lower()):
                    continue
                label = _cell(row, label_col)
                labels[image] = label if labels.get(image, label) == label else None
            return labels
    except OSError as exc:
        raise ClientError(f"{path}: cannot read the labels CSV ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"{path}: not a readable CSV file ({exc})") from None


def _cell(row: list[str], column: int | None) -> str:
    return row[column].strip() if column is not None and column < len(row) else ""


def format_scores(scores: ClassificationScores) -> str:
    """A report for the terminal: accuracy, the per-class table and the confusion matrix."""
    lines = [
        f"accuracy {scores.accuracy:.4f} ({scores.correct}/{scores.samples} samples, "
        f"{scores.images} images; {scores.unlabelled} unlabelled)",
        *(
            [f"{scores.without_segments} labelled images have no classified segment"]
            if scores.without_segments
            else []
        ),
        *(
            [f"{scores.without_results} labelled images have no result (not run or failed)"]
            if scores.without_results
            else []
        ),
        *([f"{scores.badlisted} badlisted images left out"] if scores.badlisted else []),
        "",
    ]
    width = max([len("class"), *(len(name) for name in scores.classes)])
    lines.append(f"{'class':<{width}}  precision  recall  support")
    for name in scores.classes:
        precision, recall, support = scores.per_class[name]
        lines.append(f"{name:<{width}}  {precision:>9.4f}  {recall:>6.4f}  {support:>7d}")
    lines.append("")
    if len(scores.classes) > _MAX_MATRIX_CLASSES:
        lines.extend(_top_confusions(scores))
    else:
        lines.extend(_matrix(scores))
    return "\n".join(lines)


def _listed(fields: list[str], most: int = 8) -> str:
    """The columns of a header, shortened: a file that is no CSV makes one long odd "column"."""
    if not fields:
        return "none"
    shown = ", ".join(repr(name if len(name) <= 30 else name[:29] + "…") for name in fields[:most])
    return shown if len(fields) <= most else f"{shown}, … ({len(fields)} in all)"


def _normalized(image: str) -> str:
    image = image.strip().replace("\\", "/")
    while image.startswith("./"):
        image = image[2:]
    return image


class _Matcher:
    """A record's image -> the CSV entry it names, or None (no entry, or several)."""

    def __init__(self, labels: dict[str, str | None]):
        self.labels = labels
        self.by_suffix: dict[str, list[str]] = {}
        for image in labels:
            parts = image.split("/")
            for start in range(1, len(parts)):
                self.by_suffix.setdefault("/".join(parts[start:]), []).append(image)

    def __call__(self, image: str) -> str | None:
        image = _normalized(image)
        if image in self.labels:
            return image
        candidates = self.by_suffix.get(image, [])
        return candidates[0] if len(candidates) == 1 else None


def _read_records(results_dir: Path) -> list[tuple[Path, dict]]:
    records = []
    for path in sorted(results_dir.rglob("*.json")):
        if path.name == FAILURES_FILE or path.name.startswith(".") or not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClientError(f"{path}: not a readable result record ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise ClientError(f'{path}: not a seg-client result record (no "image")')
        if "detections" in record or "mask" in record:
            kind = "an instance-segmentation" if "detections" in record else "a semantic-segmentation"
            raise ClientError(
                f"{path}: {kind} result; evaluate --labels scores classification results "
                "(and --annotations scores instance results)"
            )
        if "classes" not in record and "segments" not in record:
            raise ClientError(f'{path}: not a classification result (no "classes" or "segments")')
        records.append((path, record))
    return records


def _ranked_classes(path: Path, record: dict) -> list[list[dict]]:
    """The ranked classes of each sample of a record: one for a whole image, one per segment."""
    if "segments" in record:
        ranked = [
            segment.get("classes") if isinstance(segment, dict) else None for segment in record["segments"]
        ]
    else:
        ranked = [record["classes"]]
    for classes in ranked:
        if not isinstance(classes, list) or not classes or "class_name" not in classes[0]:
            raise ClientError(f'{path}: a classification result without a ranked class (empty "classes")')
    return ranked


def _nothing_matched(
    labels_csv: Path, results_dir: Path, labels: dict[str, str | None], records: list[tuple[Path, dict]]
) -> ClientError:
    labelled = [image for image, label in labels.items() if label]
    if not labelled:
        return ClientError(f"{labels_csv}: no row has a label; nothing to score")
    return ClientError(
        f"no record in {results_dir} matches a labelled image of {labels_csv}: records name images "
        f"like {records[0][1]['image']!r}, the CSV lists entries like {labelled[0]!r}; run "
        "`seg-client infer` with --group NAME, or with --source on the folder those entries are "
        "relative to (DATA/pictures) or one below it"
    )


def _scores(
    truths: list[str], predictions: list[str], class_ids: dict[str, int], images: int, unlabelled: int
) -> ClassificationScores:
    names = set(truths) | set(predictions)
    known = sorted((name for name in names if name in class_ids), key=lambda name: (class_ids[name], name))
    classes = known + sorted(names - set(known))
    index = {name: i for i, name in enumerate(classes)}
    confusion = [[0] * len(classes) for _ in classes]
    for truth, predicted in zip(truths, predictions):
        confusion[index[truth]][index[predicted]] += 1
    per_class = {}
    for i, name in enumerate(classes):
        hits = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        per_class[name] = (
            hits / predicted if predicted else 0.0,
            hits / support if support else 0.0,
            support,
        )
    correct = sum(confusion[i][i] for i in range(len(classes)))
    samples = len(truths)
    return ClassificationScores(
        samples=samples,
        images=images,
        unlabelled=unlabelled,
        correct=correct,
        accuracy=correct / samples if samples else 0.0,
        classes=classes,
        confusion=confusion,
        per_class=per_class,
    )


def _short(name: str) -> str:
    return name if len(name) <= _NAME_WIDTH else name[: _NAME_WIDTH - 1] + "…"


def _matrix(scores: ClassificationScores) -> list[str]:
    corner = "true \\ pred"
    heads = [_short(name) for name in scores.classes]
    row_width = max([len(corner), *(len(head) for head in heads)])
    widths = [
        max(len(head), *(len(str(row[j])) for row in scores.confusion)) if scores.confusion else len(head)
        for j, head in enumerate(heads)
    ]
    lines = ["confusion matrix (rows: true label, columns: predicted)"]
    lines.append("  ".join([f"{corner:<{row_width}}", *(f"{h:>{w}}" for h, w in zip(heads, widths))]))
    for head, row in zip(heads, scores.confusion):
        lines.append("  ".join([f"{head:<{row_width}}", *(f"{n:>{w}}" for n, w in zip(row, widths))]))
    return lines


def _top_confusions(scores: ClassificationScores, count: int = 10) -> list[str]:
    mistakes = Counter(
        {
            (truth, predicted): scores.confusion[i][j]
            for i, truth in enumerate(scores.classes)
            for j, predicted in enumerate(scores.classes)
            if i != j and scores.confusion[i][j]
        }
    )
    lines = [f"confusion matrix: {len(scores.classes)} classes, too wide to print; most frequent mistakes:"]
    if not mistakes:
        lines.append("  none")
    for (truth, predicted), n in mistakes.most_common(count):
        lines.append(f"  {n:>5d}  {truth} -> {predicted}")
    return lines
