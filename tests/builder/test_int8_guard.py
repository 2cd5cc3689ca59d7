"""The INT8 accuracy guard on hand-made data: the agreement measures, the verdict and its record,
the calibration split, and what ``build-repo doctor`` says of a folder with a quantization.json."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from builder import doctor
from builder.errors import BuildError
from builder.quantization.agreement import (
    Agreement,
    Detections,
    NothingToCompare,
    class_map_miou,
    mask_map50,
    top1_agreement,
)
from builder.quantization.calibration import MIN_IMAGES, calibration_set
from builder.quantization.guard import RECORD_FILE, GuardResult
from builder.quantization.options import HELD_OUT_EVERY, Int8Options
from segops import rle
from segops.resize import InputSpec

SIZE = (40, 60)  # (height, width) of the hand-made images


def _box_mask(y: int, x: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros(SIZE, np.uint8)
    mask[y : y + h, x : x + w] = 1
    return mask


def _detections(masks: list[np.ndarray], classes: list[int], scores: list[float] | None = None) -> Detections:
    scores = scores or [0.9 - 0.1 * i for i in range(len(masks))]
    return Detections(
        np.asarray(scores, np.float32),
        np.asarray(classes, np.int64),
        [rle.encode(m) for m in masks],
        SIZE,
    )


def _scene() -> list[Detections]:
    """Two images, three objects of two classes."""
    return [
        _detections([_box_mask(2, 2, 10, 10), _box_mask(20, 30, 15, 20)], [0, 1]),
        _detections([_box_mask(5, 40, 12, 12)], [1]),
    ]


# --- mask mAP50 ------------------------------------------------------------------------------
def test_detections_against_themselves_score_100():
    agreement = mask_map50(_scene(), _scene())
    assert agreement.score == pytest.approx(100.0)
    assert agreement.drop == pytest.approx(0.0)
    assert agreement.images == 2
    assert "mAP50" in agreement.metric


def test_a_missing_mask_lowers_the_score():
    reference = _scene()
    candidate = [_detections([_box_mask(2, 2, 10, 10)], [0]), reference[1]]  # the class-1 box lost
    agreement = mask_map50(reference, candidate)
    assert 0.0 < agreement.score < 100.0
    assert agreement.drop > 0.0


def test_a_mask_shifted_below_iou_half_no_longer_counts():
    reference = _scene()
    shifted = _box_mask(2, 8, 10, 10)  # 6 of 10 columns off: IoU 4/16
    candidate = [_detections([shifted, _box_mask(20, 30, 15, 20)], [0, 1]), reference[1]]
    agreement = mask_map50(reference, candidate)
    assert agreement.score < 100.0
    # a slight shift (IoU 0.8) still matches at IoU 0.5
    slight = [_detections([_box_mask(2, 3, 10, 10), _box_mask(20, 30, 15, 20)], [0, 1]), reference[1]]
    assert mask_map50(reference, slight).score == pytest.approx(100.0)


def test_no_candidate_detections_scores_0():
    reference = _scene()
    empty = [_detections([], []) for _ in reference]
    assert mask_map50(reference, empty).score == 0.0


def test_fp32_without_detections_cannot_be_measured():
    empty = [_detections([], []) for _ in range(3)]
    with pytest.raises(BuildError, match="--accept-drop") as caught:
        mask_map50(empty, _scene())
    assert "3 held-out" in str(caught.value)


# --- top-1 agreement and class-map mIoU -------------------------------------------------------
def test_more_than_a_hundred_detections_per_image_are_all_counted():
    """COCOeval's first figure fixes maxDets at 100; the guard's mAP50 reads the one over all."""
    masks = [_box_mask(y, x, 3, 3) for y in range(0, 36, 4) for x in range(0, 56, 4)][:120]
    image = _detections(masks, [0] * len(masks), [0.9 - 0.001 * i for i in range(len(masks))])
    assert len(image.scores) == 120
    assert mask_map50([image], [image]).score == pytest.approx(100.0)


def test_a_class_fp32_never_shows_counts_as_ap_0():
    """COCOeval leaves out a class without ground truth; INT8 inventing one confidently must cost."""
    invented = _scene()
    extra = _detections([_box_mask(25, 2, 10, 10)], [2], [0.95])
    invented[1] = Detections(
        np.concatenate([invented[1].scores, extra.scores]),
        np.concatenate([invented[1].classes, extra.classes]),
        [*invented[1].masks, *extra.masks],
        SIZE,
    )
    assert mask_map50(_scene(), invented).score == pytest.approx(100.0)  # below `confident`: not counted
    assert mask_map50(_scene(), invented, confident=0.25).score == pytest.approx(100.0 * 2 / 3)


def test_nothing_to_compare_carries_what_accept_drop_records():
    empty = _detections([], [])
    with pytest.raises(NothingToCompare) as caught:
        mask_map50([empty], [empty])
    assert caught.value.agreement.score == 0.0 and "not measured" in caught.value.agreement.metric


def test_top1_agreement():
    reference = [np.array([0.1, 0.7, 0.2]), np.array([0.5, 0.3, 0.2]), np.array([[0.2, 0.2, 0.6]])]
    assert top1_agreement(reference, reference).score == pytest.approx(100.0)
    candidate = [np.array([0.1, 0.6, 0.3]), np.array([0.3, 0.5, 0.2]), np.array([[0.1, 0.2, 0.7]])]
    agreement = top1_agreement(reference, candidate)
    assert agreement.score == pytest.approx(200 / 3)
    assert agreement.drop == pytest.approx(100 / 3)
    assert agreement.images == 3


def test_class_map_miou():
    reference = np.zeros((4, 4), np.int64)
    reference[:, 2:] = 1
    assert class_map_miou([reference], [reference]).score == pytest.approx(100.0)
    candidate = reference.copy()
    candidate[:, 1] = 1  # class 1 grows by a column: IoU 8/12 for it, 4/8 for class 0
    agreement = class_map_miou([reference], [candidate])
    assert agreement.score == pytest.approx(100 * (8 / 12 + 4 / 8) / 2)
    # a class only the candidate shows counts as a class with IoU 0
    stray = reference.copy()
    stray[0, 0] = 2
    expected = 100 * (7 / 8 + 1.0 + 0.0) / 3
    assert class_map_miou([reference], [stray]).score == pytest.approx(expected)


# --- the verdict ------------------------------------------------------------------------------
def _options(tmp_path: Path, max_drop: float = 1.0, accept_drop: bool = False) -> Int8Options:
    return Int8Options(tmp_path, max_drop, accept_drop)


def test_within_the_limit_is_built(tmp_path):
    result = GuardResult.judge(Agreement("top-1", 99.5, 20), _options(tmp_path), "NNCF", 80)
    assert (result.score, result.drop, result.max_drop) == (99.5, 0.5, 1.0)
    assert (result.held_out_images, result.calibration_images) == (20, 80)
    assert not result.accepted_drop
    assert "within the limit 1" in result.describe()
    assert result.record() == {
        "precision": "int8",
        "int8_metric": "top-1",
        "int8_score": 99.5,
        "int8_drop": 0.5,
        "int8_max_drop": 1.0,
        "int8_held_out_images": 20,
        "int8_accepted_drop": 0,
    }


def test_a_drop_equal_to_the_limit_is_within_it(tmp_path):
    result = GuardResult.judge(Agreement("top-1", 99.0, 20), _options(tmp_path), "NNCF", 80)
    assert not result.accepted_drop


def test_beyond_the_limit_is_refused(tmp_path):
    with pytest.raises(BuildError, match=r"^--int8 refused: .*drop of 5\.00 points") as caught:
        GuardResult.judge(Agreement("top-1", 95.0, 20), _options(tmp_path), "NNCF", 80)
    message = str(caught.value)
    assert "beyond the limit 1" in message and "--accept-drop" in message and "--max-drop" in message


def test_beyond_the_limit_with_accept_drop_is_built_and_says_so(tmp_path):
    options = _options(tmp_path, accept_drop=True)
    result = GuardResult.judge(Agreement("top-1", 95.0, 20), options, "NNCF", 80)
    assert result.accepted_drop
    assert "accepted with --accept-drop" in result.describe()
    assert result.record()["int8_accepted_drop"] == 1


def test_a_higher_max_drop_builds_it(tmp_path):
    result = GuardResult.judge(Agreement("top-1", 95.0, 20), _options(tmp_path, 5.5), "NNCF", 80)
    assert not result.accepted_drop and result.max_drop == 5.5


def test_the_verdict_and_its_words_judge_the_same_drop(tmp_path):
    """What the record and the message say (the drop to 3 decimals) is what is judged."""
    at_limit = GuardResult.judge(Agreement("mask mAP50", 98.9996, 20), _options(tmp_path), "NNCF", 80)
    assert at_limit.drop == 1.0 and "within the limit" in at_limit.describe()
    with pytest.raises(BuildError) as caught:
        GuardResult.judge(Agreement("mask mAP50", 98.998, 20), _options(tmp_path), "NNCF", 80)
    assert "within the limit" not in str(caught.value) and "beyond the limit 1" in str(caught.value)


def test_json_round_trip(tmp_path):
    result = GuardResult.judge(
        Agreement("top-1", 93.25, 12), _options(tmp_path, accept_drop=True), "NNCF", 48
    )
    text = result.to_json()
    assert '"precision": "int8"' in text and text.endswith("\n")
    assert GuardResult.from_json(text) == result


def test_int8_options_are_checked(tmp_path):
    with pytest.raises(BuildError, match="no such folder"):
        Int8Options(tmp_path / "nope")
    with pytest.raises(BuildError, match="--max-drop"):
        Int8Options(tmp_path, max_drop=-1)


# --- the calibration images -------------------------------------------------------------------
SPEC = InputSpec(32, 32)


def _write_images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        cv2.imwrite(str(folder / f"img{i:02d}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return folder


def test_every_fifth_image_is_held_out(tmp_path):
    images = calibration_set(_write_images(tmp_path / "cal", 12), SPEC)
    assert HELD_OUT_EVERY == 5
    assert (len(images.calibrate), len(images.held_out), images.skipped) == (10, 2, [])
    for x in (*images.calibrate, *images.held_out):  # prepared, a batch of one, the full square
        assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32


def test_the_square_even_where_the_server_pads_to_the_stride(tmp_path):
    images = calibration_set(_write_images(tmp_path / "cal", 5), InputSpec(64, 64, stride=32))
    assert {x.shape for x in (*images.calibrate, *images.held_out)} == {(1, 3, 64, 64)}


def test_too_few_images_is_an_error(tmp_path):
    folder = _write_images(tmp_path / "cal", MIN_IMAGES - 1)
    with pytest.raises(BuildError, match=rf"{MIN_IMAGES - 1} decodable images; give at least {MIN_IMAGES}"):
        calibration_set(folder, SPEC)


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "notes.txt").write_text("no images here")
    with pytest.raises(BuildError, match="no images"):
        calibration_set(tmp_path / "cal", SPEC)


def test_an_undecodable_file_is_skipped_and_named(tmp_path):
    folder = _write_images(tmp_path / "cal", 5)
    broken = folder / "img02b.jpg"  # sorted among the good ones
    broken.write_bytes(b"not a JPEG at all")
    images = calibration_set(folder, SPEC)
    assert [path for path, _ in images.skipped] == [broken]
    assert (len(images.calibrate), len(images.held_out)) == (4, 1)  # the broken one is not counted
    with pytest.raises(BuildError, match="4 decodable images"):  # nor towards the minimum
        (folder / "img00.jpg").unlink()
        calibration_set(folder, SPEC)


# --- build-repo doctor --------------------------------------------------------------------------
def test_doctor_reads_quantization_json(tmp_path):
    options = _options(tmp_path)
    within = GuardResult.judge(Agreement("top-1 agreement", 99.5, 20), options, "NNCF PTQ", 80)
    accepted = GuardResult.judge(
        Agreement("mask mAP50", 90.0, 10), _options(tmp_path, accept_drop=True), "NNCF PTQ", 40
    )
    repo = tmp_path / "repo"
    for name, result in (("a_model", within), ("b_model", accepted)):
        (repo / name).mkdir(parents=True)
        (repo / name / RECORD_FILE).write_text(result.to_json())
    (repo / "c_model").mkdir()  # FP32: no record, no line
    (repo / "d_model").mkdir()
    (repo / "d_model" / RECORD_FILE).write_text("{not json")
    lines = doctor.int8_lines(repo)
    assert len(lines) == 3
    assert lines[0] == f"a_model: INT8 by NNCF PTQ: {within.describe()}"
    assert "within the limit 1" in lines[0] and "warning" not in lines[0]
    assert lines[1].startswith("b_model: INT8 by NNCF PTQ: mask mAP50 90.00 on 10 held-out images")
    assert lines[1].endswith("(warning: beyond the limit)")
    assert lines[2].startswith(f"d_model: unreadable {RECORD_FILE}")


def test_doctor_of_a_repository_without_int8(tmp_path):
    assert doctor.int8_lines(tmp_path) == []
