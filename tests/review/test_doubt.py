"""review.doubt on segments with real RLEs (pycocotools, from numpy masks): each term, the three
orders, overlaps only across classes within one image (rejected segments left out), classifier
margins read from files, the reasons' text, and the ranking on the benchmark's simulated group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.review_doubt import measure
from review.doubt import Doubt, Order, margin_term, rank, read_classifier_margins, score_term
from store.records import Status, StoredSegment
from tests.helpers import segment_of_mask

W, H = 64, 48


def box_mask(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def segment(
    id: int,
    mask: np.ndarray,
    class_id: int = 0,
    class_name: str = "cat",
    score: float = 0.9,
    image_id: int = 1,
    image: str = "a/1.jpg",
    model: str = "seg",
    status: Status = Status.UNCHECKED,
) -> StoredSegment:
    return segment_of_mask(id, mask, class_id, class_name, score, image_id, image, model, status)


def by_id(doubts: list[Doubt]) -> dict[int, Doubt]:
    return {d.segment_id: d for d in doubts}


# --- the terms -----------------------------------------------------------------------------------


def test_score_term_is_one_at_the_threshold_and_falls_to_zero_half_a_unit_away():
    assert score_term(0.5, 0.5) == 1.0
    assert score_term(0.75, 0.5) == pytest.approx(0.5)
    assert score_term(0.25, 0.5) == pytest.approx(0.5)
    assert score_term(1.0, 0.5) == 0.0 and score_term(0.0, 0.5) == 0.0
    assert score_term(0.95, 0.3) == 0.0  # clipped, not negative
    assert np.allclose(score_term(np.array([0.3, 0.4, 0.9]), 0.3), [1.0, 0.8, 0.0])


def test_margin_term_is_one_minus_the_gap_between_the_top_two():
    assert margin_term(0.48, 0.41) == pytest.approx(0.93)
    assert margin_term(1.0, 0.0) == 0.0
    assert margin_term(0.5, 0.5) == 1.0
    assert margin_term(0.3, 0.6) == 1.0  # a file that ranks them the wrong way round: clipped


def test_without_a_classifier_result_the_margin_term_is_none_and_the_value_is_the_max_term():
    segments = [segment(1, box_mask(0, 0, 10, 10), score=0.55), segment(2, box_mask(20, 20, 30, 30))]
    doubts = by_id(rank(segments, threshold=0.5, margins={2: (0.45, 0.40, "cat 0.45 vs dog 0.40")}))
    assert doubts[1].margin_term is None and doubts[1].margin_detail is None
    assert doubts[1].value == pytest.approx(0.9) == pytest.approx(doubts[1].score_term)
    assert doubts[2].margin_term == pytest.approx(0.95) and doubts[2].value == pytest.approx(0.95)
    assert doubts[2].score_term == pytest.approx(0.2)
    assert doubts[2].margin_detail == "cat 0.45 vs dog 0.40"
    assert all(0.0 <= d.value <= 1.0 for d in doubts.values())


# --- overlaps ------------------------------------------------------------------------------------


def test_overlap_is_the_mask_iou_with_another_class_of_the_same_image_and_model():
    cat = segment(1, box_mask(0, 0, 20, 20), 0, "cat")
    dog = segment(2, box_mask(10, 0, 30, 20), 1, "dog")  # IoU 200 / 600
    same_class = segment(3, box_mask(0, 0, 20, 20), 0, "cat")  # the cat's mask again, as a cat
    other_image = segment(4, box_mask(0, 0, 20, 20), 2, "car", image_id=2, image="b/2.jpg")
    other_model = segment(5, box_mask(0, 0, 20, 20), 3, "bike", model="other")
    doubts = by_id(rank([cat, dog, same_class, other_image, other_model]))
    assert doubts[1].overlap_term == pytest.approx(1 / 3) and doubts[1].overlap_with == "dog"
    assert doubts[2].overlap_term == pytest.approx(1 / 3) and doubts[2].overlap_with == "cat"
    assert doubts[3].overlap_term == pytest.approx(1 / 3)  # the dog, not its twin cat (IoU 1)
    assert doubts[4].overlap_term == 0.0 and doubts[4].overlap_with is None
    assert doubts[5].overlap_term == 0.0


def test_overlap_takes_the_largest_iou_and_ignores_boxes_that_only_touch():
    cat = segment(1, box_mask(0, 0, 20, 20), 0, "cat")
    dog = segment(2, box_mask(5, 0, 20, 20), 1, "dog")  # IoU 0.75
    car = segment(3, box_mask(15, 0, 25, 20), 2, "car")  # IoU 100 / 500 with the cat
    touching = segment(4, box_mask(20, 0, 40, 20), 3, "bike")  # shares the cat's edge, no pixel
    doubts = by_id(rank([cat, dog, car, touching]))
    assert doubts[1].overlap_term == pytest.approx(0.75) and doubts[1].overlap_with == "dog"
    assert doubts[4].overlap_term == pytest.approx(100 / 500) and doubts[4].overlap_with == "car"


def test_rejected_segments_are_no_ones_overlap_but_still_have_their_own():
    cat = segment(1, box_mask(0, 0, 20, 20), 0, "cat")
    dog = segment(2, box_mask(0, 0, 20, 18), 1, "dog", status=Status.REJECTED)
    doubts = by_id(rank([cat, dog]))
    assert doubts[1].overlap_term == 0.0 and doubts[1].overlap_with is None
    assert doubts[2].overlap_term == pytest.approx(0.9) and doubts[2].overlap_with == "cat"


# --- the orders ----------------------------------------------------------------------------------


@pytest.fixture
def group() -> list[StoredSegment]:
    return [
        segment(1, box_mask(0, 0, 10, 10), score=0.95, image="b/2.jpg", image_id=2),  # doubt 0.1
        segment(2, box_mask(12, 0, 20, 10), score=0.6, image="a/1.jpg"),  # score term 0.8
        segment(3, box_mask(30, 0, 40, 10), 0, "cat", score=0.9, image="c/3.jpg", image_id=3),
        segment(4, box_mask(30, 0, 40, 9), 1, "dog", score=0.92, image="c/3.jpg", image_id=3),  # IoU 0.9
        segment(5, box_mask(0, 20, 10, 30), score=0.7, image="a/1.jpg"),  # margin 0.95
        segment(6, box_mask(20, 20, 30, 30), score=0.6, image="a/1.jpg"),  # ties with 2: id breaks it
        segment(7, box_mask(40, 20, 50, 30), score=0.4, image="a/1.jpg"),  # score term 0.8, lower score
    ]


MARGINS = {5: (0.5, 0.45, "cat 0.50 vs dog 0.45"), 1: (0.99, 0.01, "cat 0.99 vs dog 0.01")}


def test_uncertainty_puts_the_most_doubtful_first_ties_by_lower_score_then_id(group):
    doubts = rank(group, Order.UNCERTAINTY, 0.5, MARGINS)
    assert [d.segment_id for d in doubts] == [5, 3, 4, 7, 2, 6, 1]
    assert [round(d.value, 2) for d in doubts] == [0.95, 0.9, 0.9, 0.8, 0.8, 0.8, 0.1]
    assert rank(group, margins=MARGINS, threshold=0.5) == doubts  # the defaults


def test_score_order_is_the_lowest_score_first_then_id(group):
    doubts = rank(group, Order.SCORE, 0.5, MARGINS)
    assert [d.segment_id for d in doubts] == [7, 2, 6, 5, 3, 4, 1]
    assert by_id(doubts)[5].value == pytest.approx(0.95)  # every order carries the doubts


def test_image_order_is_by_image_path_then_id(group):
    doubts = rank(group, Order.IMAGE, 0.5, MARGINS)
    assert [d.segment_id for d in doubts] == [2, 5, 6, 7, 1, 3, 4]


def test_order_parses_from_its_value_and_nothing_ranks_to_nothing():
    assert Order("score") is Order.SCORE and Order.UNCERTAINTY == "uncertainty"
    assert rank([]) == []


# --- classifier margins from files ---------------------------------------------------------------


def classified(segment_id: int, *scores: tuple[str, float], **extra) -> dict:
    classes = [{"class_id": k, "class_name": n, "score": s, **extra} for k, (n, s) in enumerate(scores)]
    return {"segment_id": segment_id, "bbox": [0, 0, 1, 1], "classes": classes}


def meta(*segments: dict) -> str:
    data = {"image": "a/1.jpg", "model": "cls", "segment_model": "seg", "segments": list(segments)}
    return json.dumps(data)


def test_margins_are_read_recursively_and_broken_files_and_entries_skipped(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.json").write_text(
        meta(
            classified(12, ("cat", 0.48), ("dog", 0.41), ("car", 0.11)),
            classified(13, ("cat", 0.9)),  # one class: no margin
            classified(14, ("cat", 0.7), ("dog", "high")),  # the second's score is not a number
            {"segment_id": "15", "classes": []},  # not of the shape
            classified(16, ("car", 0.6), ("bike", 0.3), top5=True),  # other keys are fine
        )
    )
    (tmp_path / "a" / "deeper").mkdir()
    (tmp_path / "a" / "deeper" / "2.json").write_text(meta(classified(20, ("dog", 0.5), ("cat", 0.5))))
    (tmp_path / "broken.json").write_text('{"image": "b/2.jpg", "segments": [')
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "other.json").write_text(json.dumps({"segments": {"12": 1}}))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "notes.txt").write_text(meta(classified(30, ("cat", 0.5), ("dog", 0.4))))
    margins = read_classifier_margins(tmp_path)
    assert margins == {
        12: (0.48, 0.41, "cat 0.48 vs dog 0.41"),
        16: (0.6, 0.3, "car 0.60 vs bike 0.30"),
        20: (0.5, 0.5, "dog 0.50 vs cat 0.50"),
    }


def test_an_empty_or_missing_folder_has_no_margins(tmp_path):
    assert read_classifier_margins(tmp_path) == {}
    assert read_classifier_margins(tmp_path / "absent") == {}


# --- reasons -------------------------------------------------------------------------------------


def test_reasons_name_the_notable_terms_strongest_first():
    doubt = Doubt(
        segment_id=1,
        value=0.96,
        score_term=0.96,
        margin_term=0.93,
        overlap_term=0.63,
        overlap_with="dog",
        margin_detail="cat 0.48 vs dog 0.41",
        score=0.52,
        threshold=0.5,
    )
    assert doubt.reasons() == [
        "score 0.52 near threshold 0.5",
        "classifier: cat 0.48 vs dog 0.41",
        "overlaps a dog (IoU 0.63)",
    ]


def test_reasons_leave_out_terms_at_or_under_one_half():
    quiet = Doubt(1, 0.5, 0.5, None, 0.2, score=0.75, threshold=0.5)
    assert quiet.reasons() == []
    cat = segment(1, box_mask(0, 0, 20, 20), 0, "cat", score=0.97)
    dog = segment(2, box_mask(0, 0, 20, 19), 1, "dog", score=0.99)
    assert by_id(rank([cat, dog]))[1].reasons() == ["overlaps a dog (IoU 0.95)"]


# --- the ranking on the benchmark's simulation ---------------------------------------------------


def test_on_a_simulated_group_the_uncertainty_order_finds_more_errors_than_a_random_one():
    figures = measure(images=100, seed=0)
    assert figures["segments"] > 500 and figures["errors"] > 20
    assert figures["error_kinds"]["wrong class"] and figures["error_kinds"]["blob"]
    assert figures["ratio"] > 1.5, figures
