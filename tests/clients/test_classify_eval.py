"""seg-client evaluate --labels: records matched to CSV labels, scored by hand-checked numbers."""

import json
from pathlib import Path

import pytest

from clients.inference.classify_eval import ClassificationScores, evaluate_labels, format_scores
from clients.inference.run import FAILURES_FILE
from clients.triton.client import ClientError

CLASS_IDS = {"circle": 0, "square": 1, "triangle": 2}


def ranked(*names: str) -> list[dict]:
    """Ranked classes, best first, as seg-client infer writes them."""
    return [
        {"class_id": CLASS_IDS.get(name, 99), "class_name": name, "score": round(0.9 - 0.1 * i, 2)}
        for i, name in enumerate(names)
    ]


def whole(image: str, *names: str) -> dict:
    return {"image": image, "width": 64, "height": 64, "model": "shapes_cls", "classes": ranked(*names)}


def segmented(image: str, *predictions: str) -> dict:
    segments = [
        {"segment_id": 10 + i, "bbox": [0, 0, 8, 8], "classes": ranked(name)}
        for i, name in enumerate(predictions)
    ]
    return {
        "image": image,
        "width": 64,
        "height": 64,
        "model": "shapes_cls",
        "segment_model": "yolo",
        "segments": segments,
    }


def write_records(folder, records: dict[str, dict]) -> None:
    for name, record in records.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))


def write_csv(path, rows, header="image,label,split") -> None:
    path.write_text("\n".join([header, *(",".join(row) for row in rows)]) + "\n")


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.fixture
def labels_csv(tmp_path):
    path = tmp_path / "shapes.csv"
    write_csv(
        path,
        [
            ("shapes/circle_000.png", "circle", "train"),
            ("shapes/circle_001.png", "circle", "val"),
            ("shapes/square_000.png", "square", "val"),
            ("shapes/square_001.png", "square", "val"),
            ("shapes/triangle_000.png", "triangle", "val"),
            ("shapes/unknown.png", "", "val"),
        ],
    )
    return path


def test_exact_matching_scores_by_hand(tmp_path, labels_csv):
    out = tmp_path / "out"
    write_records(
        out,
        {
            "circle_000.json": whole("shapes/circle_000.png", "circle", "square"),
            "circle_001.json": whole("shapes/circle_001.png", "square", "circle"),
            "square_000.json": whole("shapes/square_000.png", "square"),
            "sub/square_001.json": whole("shapes/square_001.png", "square"),
            "triangle_000.json": whole("shapes/triangle_000.png", "circle"),
            "unknown.json": whole("shapes/unknown.png", "circle"),  # empty label: not scored
            "other.json": whole("elsewhere/other.png", "circle"),  # not in the CSV
            FAILURES_FILE: {"shapes/broken.png": "unreadable"},
        },
    )
    scores = evaluate_labels(labels_csv, out)
    assert (scores.samples, scores.images, scores.unlabelled, scores.correct) == (5, 5, 2, 3)
    assert scores.accuracy == pytest.approx(0.6)
    assert scores.classes == ["circle", "square", "triangle"]
    # true circle: 1 circle, 1 square; square: 2 square; triangle: 1 circle
    assert scores.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert scores.per_class["circle"] == pytest.approx((0.5, 0.5, 2))
    assert scores.per_class["square"] == pytest.approx((2 / 3, 1.0, 2))
    assert scores.per_class["triangle"] == (0.0, 0.0, 1)  # never predicted
    assert all(isinstance(support, int) for _, _, support in scores.per_class.values())


def test_suffix_matching_and_ambiguity(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(
        csv_path,
        [
            ("shapes/a/circle.png", "circle"),
            ("shapes/b/circle.png", "square"),  # circle.png alone is ambiguous
            ("shapes/sub/x.png", "square"),
            ("./other\\y.png", "triangle"),  # normalized to other/y.png
        ],
        header="image,label",
    )
    out = tmp_path / "out"
    write_records(
        out,
        {
            "circle.json": whole("circle.png", "circle"),  # a/ or b/: unlabelled
            "a_circle.json": whole("a/circle.png", "circle"),  # unique suffix
            "x.json": whole("sub/x.png", "square"),
            "x2.json": whole("x.png", "circle"),  # unique suffix too, wrong prediction
            "y.json": whole("y.png", "triangle"),
            "z.json": whole("ub/x.png", "square"),  # not a whole path component: no match
        },
    )
    scores = evaluate_labels(csv_path, out)
    assert (scores.samples, scores.images, scores.unlabelled, scores.correct) == (4, 4, 2, 3)
    assert scores.confusion == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_exact_match_wins_over_suffix(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(csv_path, [("x.png", "circle"), ("a/x.png", "square")], header="image,label")
    out = tmp_path / "out"
    write_records(out, {"x.json": whole("x.png", "circle")})
    scores = evaluate_labels(csv_path, out)
    assert (scores.samples, scores.unlabelled, scores.correct) == (1, 0, 1)


def test_conflicting_duplicate_rows_are_unlabelled(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(
        csv_path,
        [("s/x.png", "circle"), ("s/x.png", "square"), ("s/y.png", "circle"), ("s/y.png", "circle")],
        header="image,label",
    )
    out = tmp_path / "out"
    write_records(out, {"x.json": whole("s/x.png", "circle"), "y.json": whole("s/y.png", "circle")})
    scores = evaluate_labels(csv_path, out)
    assert (scores.samples, scores.unlabelled, scores.correct) == (1, 1, 1)


def test_segments_records_score_each_segment(tmp_path, labels_csv):
    out = tmp_path / "out"
    write_records(
        out,
        {
            "circle_000.json": segmented("shapes/circle_000.png", "circle", "circle", "triangle"),
            "square_000.json": segmented("shapes/square_000.png", "square", "blob"),  # blob: not a label
            "square_001.json": segmented("shapes/square_001.png"),  # no segment: an image, no sample
        },
    )
    scores = evaluate_labels(labels_csv, out)
    assert (scores.samples, scores.images, scores.unlabelled, scores.correct) == (5, 2, 0, 3)
    assert scores.without_segments == 1 and "1 labelled images have no classified segment" in format_scores(
        scores
    )
    # circle, square, triangle by class_id; blob (id 99) after them
    assert scores.classes == ["circle", "square", "triangle", "blob"]
    assert scores.confusion == [
        [2, 0, 1, 0],
        [0, 1, 0, 1],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
    assert scores.per_class["circle"] == (1.0, pytest.approx(2 / 3), 3)
    assert scores.per_class["square"] == (1.0, 0.5, 2)
    assert scores.per_class["triangle"] == (0.0, 0.0, 0)
    assert scores.per_class["blob"] == (0.0, 0.0, 0)


def test_class_order_follows_class_id_then_names(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(
        csv_path, [("p/1.png", "zebra"), ("p/2.png", "apple"), ("p/3.png", "mango")], header="image,label"
    )
    out = tmp_path / "out"
    record = whole("p/1.png", "x")
    record["classes"] = [{"class_id": 5, "class_name": "zebra", "score": 0.6}]
    other = whole("p/2.png", "x")
    other["classes"] = [
        {"class_id": 7, "class_name": "mango", "score": 0.5},
        {"class_id": 2, "class_name": "apple", "score": 0.4},
    ]
    third = whole("p/3.png", "x")
    third["classes"] = [{"class_name": "pear", "score": 0.9}]  # no class_id: ordered by name
    write_records(out, {"1.json": record, "2.json": other, "3.json": third})
    scores = evaluate_labels(csv_path, out)
    assert scores.classes == ["apple", "zebra", "mango", "pear"]


def test_format_scores_is_aligned():
    scores = ClassificationScores(
        samples=4,
        images=3,
        unlabelled=1,
        correct=3,
        accuracy=0.75,
        classes=["circle", "a_very_long_class_name"],
        confusion=[[2, 1], [0, 1]],
        per_class={"circle": (1.0, 2 / 3, 3), "a_very_long_class_name": (0.5, 1.0, 1)},
    )
    text = format_scores(scores)
    lines = text.splitlines()
    assert lines[0] == "accuracy 0.7500 (3/4 samples, 3 images; 1 unlabelled)"
    assert lines[2:5] == [
        "class                   precision  recall  support",
        "circle                     1.0000  0.6667        3",
        "a_very_long_class_name     0.5000  1.0000        1",
    ]
    matrix = lines[lines.index("confusion matrix (rows: true label, columns: predicted)") + 1 :]
    assert matrix == [
        "true \\ pred   circle  a_very_long…",
        "circle             2             1",
        "a_very_long…       0             1",
    ]


def test_format_scores_many_classes_lists_mistakes():
    names = [f"class_{i:02d}" for i in range(25)]
    confusion = [[0] * 25 for _ in names]
    for i in range(25):
        confusion[i][i] = 3
    confusion[4][7] = 2
    per_class = {name: (1.0, 1.0, 3) for name in names}
    scores = ClassificationScores(77, 77, 0, 75, 75 / 77, names, confusion, per_class)
    text = format_scores(scores)
    assert "class_04 -> class_07" in text
    assert max(len(line) for line in text.splitlines()) < 100


def test_missing_csv(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ClientError) as exc:
        evaluate_labels(tmp_path / "nope.csv", tmp_path / "out")
    assert str(tmp_path / "nope.csv") in one_line(exc)


def test_csv_columns_are_found_as_training_finds_them_or_named(tmp_path):
    out = tmp_path / "out"
    write_records(out, {"a.json": whole("p/a.png", "circle")})
    aliases = tmp_path / "aliases.csv"
    write_csv(aliases, [("p/a.png", "circle")], header="Path,Class")
    assert evaluate_labels(aliases, out).correct == 1
    csv_path = tmp_path / "labels.csv"
    write_csv(csv_path, [("a.png", "circle")], header="name,kind")
    with pytest.raises(ClientError) as exc:
        evaluate_labels(csv_path, out)
    message = one_line(exc)
    assert str(csv_path) in message and "'name', 'kind'" in message and "image,label" in message


def test_split_keeps_one_split_and_labelled_images_without_results_are_counted(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(
        csv_path,
        [("p/a.png", "circle", "val"), ("p/b.png", "square", "train"), ("p/c.png", "square", "val")],
        header="image,label,split",
    )
    out = tmp_path / "out"
    write_records(out, {"a.json": whole("p/a.png", "circle"), "b.json": whole("p/b.png", "circle")})
    everything = evaluate_labels(csv_path, out)
    assert (everything.samples, everything.correct, everything.without_results) == (2, 1, 1)
    val = evaluate_labels(csv_path, out, split="val")
    assert (val.samples, val.correct, val.unlabelled, val.without_results) == (1, 1, 1, 1)
    assert "1 labelled images have no result" in format_scores(val)
    with pytest.raises(ClientError, match="no split column"):
        evaluate_labels(_no_split(tmp_path), out, split="val")


def _no_split(tmp_path: Path) -> Path:
    path = tmp_path / "nosplit.csv"
    write_csv(path, [("p/a.png", "circle")], header="image,label")
    return path


def test_only_images_without_segments_is_nothing_to_score(tmp_path, labels_csv):
    out = tmp_path / "out"
    write_records(out, {"a.json": segmented("shapes/square_001.png")})
    with pytest.raises(ClientError, match="no classified segment"):
        evaluate_labels(labels_csv, out)


def test_empty_csv(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("")
    with pytest.raises(ClientError) as exc:
        evaluate_labels(csv_path, tmp_path)
    assert str(csv_path) in one_line(exc) and "none" in str(exc.value)


def test_results_without_records(tmp_path, labels_csv):
    out = tmp_path / "out"
    write_records(out, {FAILURES_FILE: {"a.png": "broken"}})
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, out)
    assert str(out) in one_line(exc) and "no result records" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, tmp_path / "missing")
    assert str(tmp_path / "missing") in one_line(exc)


def test_nothing_matches_shows_both_namings(tmp_path, labels_csv):
    out = tmp_path / "out"
    write_records(out, {"c.json": whole("pictures/shapes/circle_000.png", "circle")})
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, out)
    message = one_line(exc)
    assert str(out) in message and str(labels_csv) in message
    assert "'pictures/shapes/circle_000.png'" in message and "'shapes/circle_000.png'" in message
    assert "--group" in message


def test_csv_without_any_label(tmp_path):
    csv_path = tmp_path / "labels.csv"
    write_csv(csv_path, [("s/x.png", "")], header="image,label")
    out = tmp_path / "out"
    write_records(out, {"x.json": whole("s/x.png", "circle")})
    with pytest.raises(ClientError) as exc:
        evaluate_labels(csv_path, out)
    assert str(csv_path) in one_line(exc) and "no row has a label" in str(exc.value)


@pytest.mark.parametrize(
    ("extra", "kind"),
    [({"detections": []}, "instance-segmentation"), ({"mask": "x.png"}, "semantic-segmentation")],
)
def test_other_tasks_are_refused(tmp_path, labels_csv, extra, kind):
    out = tmp_path / "out"
    record = {"image": "shapes/circle_000.png", "width": 64, "height": 64, "model": "m", **extra}
    write_records(out, {"a.json": whole("shapes/circle_001.png", "circle"), "b.json": record})
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, out)
    message = one_line(exc)
    assert str(out / "b.json") in message and kind in message
    assert "--labels scores classification" in message and "--annotations" in message


def test_unreadable_record_names_the_file(tmp_path, labels_csv):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bad.json").write_text("{not json")
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, out)
    assert str(out / "bad.json") in one_line(exc)


def test_record_without_ranked_class(tmp_path, labels_csv):
    out = tmp_path / "out"
    record = whole("shapes/circle_000.png")
    write_records(out, {"a.json": record})
    with pytest.raises(ClientError) as exc:
        evaluate_labels(labels_csv, out)
    assert str(out / "a.json") in one_line(exc)


def test_not_a_csv_lists_few_columns(tmp_path):
    path = tmp_path / "record.json"
    path.write_text(json.dumps(whole("a.png", "circle", "square", "triangle")))
    with pytest.raises(ClientError) as exc:
        evaluate_labels(path, tmp_path)
    message = one_line(exc)
    assert str(path) in message and "in all)" in message and len(message) < 400
