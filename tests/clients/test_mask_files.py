"""The MARKUP/masks encoding: values by score, overlaps to the better segment, 16 bits past 255."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotations.mask_png import instance_color
from clients.segments.mask_files import instance_mask, write_mask_files
from store.records import Status, StoredImage, StoredSegment

W, H = 64, 48


def _image(image_id: int = 1, width: int = W, height: int = H, badlisted: bool = False) -> StoredImage:
    return StoredImage(image_id, f"cam/{image_id:03d}.jpg", width, height, "0" * 64, 1000, badlisted)


def _segment(seg_id: int, image: StoredImage, mask: np.ndarray, score: float, class_id: int = 0):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return StoredSegment(
        id=seg_id,
        image_id=image.id,
        image=image.path,
        width=image.width,
        height=image.height,
        model="yolo",
        model_version="3",
        class_id=class_id,
        class_name=f"class{class_id}",
        score=score,
        bbox=(0.0, 0.0, 1.0, 1.0),
        rle={"size": rle["size"], "counts": rle["counts"].decode()},
        status=Status.UNCHECKED,
    )


def _rect(x0: int, y0: int, x1: int, y1: int, width: int = W, height: int = H) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.rectangle(mask, (x0, y0), (x1, y1), 1, thickness=-1)
    return mask


def test_values_follow_score_and_record_lists_them():
    image = _image()
    low = _segment(7, image, _rect(2, 2, 10, 10), 0.4, class_id=1)
    high = _segment(9, image, _rect(30, 20, 40, 30), 0.9)
    other_image = _segment(11, _image(2), _rect(0, 0, 5, 5), 0.99)
    labels, record = instance_mask(image, [low, high, other_image])

    assert labels.dtype == np.uint8 and labels.shape == (H, W)
    assert (labels[20:31, 30:41] == 1).all() and (labels[2:11, 2:11] == 2).all()
    assert set(np.unique(labels)) == {0, 1, 2}
    assert record == {
        "image": "cam/001.jpg",
        "width": W,
        "height": H,
        "segments": [
            {
                "value": 1,
                "segment_id": 9,
                "class_id": 0,
                "class_name": "class0",
                "score": 0.9,
                "status": "unchecked",
                "model": "yolo",
            },
            {
                "value": 2,
                "segment_id": 7,
                "class_id": 1,
                "class_name": "class1",
                "score": 0.4,
                "status": "unchecked",
                "model": "yolo",
            },
        ],
    }


def test_overlap_goes_to_higher_score_and_ties_to_smaller_id():
    image = _image()
    big_low = _segment(1, image, _rect(0, 0, 40, 40), 0.3)
    small_high = _segment(2, image, _rect(10, 10, 20, 20), 0.8)
    tie_later = _segment(5, image, _rect(30, 30, 50, 45), 0.8)
    hidden = _segment(6, image, _rect(12, 12, 14, 14), 0.1)  # under small_high entirely
    labels, record = instance_mask(image, [hidden, tie_later, big_low, small_high])

    assert [s["segment_id"] for s in record["segments"]] == [2, 5, 1, 6]
    assert (labels[10:21, 10:21] == 1).all()  # small_high wins its square inside big_low
    assert (labels[30:41, 30:41] == 2).all()  # tie_later (0.8) beats big_low (0.3)
    assert labels[0, 0] == 3 and labels[25, 5] == 3
    assert not (labels == 4).any()  # hidden keeps its value in the record but has no pixel


def test_more_than_255_segments_is_16_bit(tmp_path):
    width, height = 150, 100
    image = _image(width=width, height=height)
    segments = []
    for i in range(300):
        row, col = divmod(i, 30)
        x, y = col * 5, row * 10
        score = 1.0 - i / 1000  # value i + 1
        segments.append(_segment(i + 1, image, _rect(x, y, x + 3, y + 3, width, height), score))
    labels, _ = instance_mask(image, segments)
    assert labels.dtype == np.uint16 and labels.max() == 300
    assert labels[0, 0] == 1 and labels[90, 145] == 300

    write_mask_files(tmp_path, "dense", image, segments)
    back = cv2.imread(str(tmp_path / "dense.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, labels)
    assert len(json.loads((tmp_path / "dense.json").read_text())["segments"]) == 300


def test_round_trip_through_the_files(tmp_path):
    image = _image()
    circle = np.zeros((H, W), np.uint8)
    cv2.circle(circle, (20, 20), 12, 1, thickness=-1)
    segments = [_segment(3, image, circle, 0.7), _segment(4, image, _rect(15, 15, 60, 40), 0.6)]
    write_mask_files(tmp_path / "masks", "cam_001", image, segments)

    labels, record = instance_mask(image, segments)
    back = cv2.imread(str(tmp_path / "masks" / "cam_001.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.ndim == 2 and np.array_equal(back, labels)
    assert json.loads((tmp_path / "masks" / "cam_001.json").read_text()) == record
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["cam_001.json", "cam_001.png"]


def test_image_without_segments_is_all_background():
    labels, record = instance_mask(_image(), [])
    assert labels.dtype == np.uint8 and not labels.any() and record["segments"] == []


def test_badlisted_image_and_wrong_mask_size_are_refused():
    with pytest.raises(ValueError, match="badlisted"):
        instance_mask(_image(badlisted=True), [])
    image = _image()
    wrong = _segment(1, image, np.ones((H, W + 1), np.uint8), 0.5)
    with pytest.raises(ValueError, match="mask size"):
        instance_mask(image, [wrong])


def test_color_mask_gives_each_value_its_own_colour_16_bit_too(tmp_path):
    labels = np.arange(301, dtype=np.uint16).reshape(7, 43)  # values 0 .. 300
    color = instance_color(labels)
    assert color.dtype == np.uint8 and color.shape == (7, 43, 3)
    assert (color[0, 0] == 0).all()  # background black
    assert len({tuple(c) for c in color.reshape(-1, 3)}) == 301  # 300 segment colours, all differ
    assert tuple(color.reshape(-1, 3)[1][::-1]) == (128, 0, 0)  # value 1: VOC red (BGR on disk)

    image = _image()
    write_mask_files(tmp_path, "cam_001", image, [_segment(1, image, _rect(5, 5, 9, 9), 0.5)], color=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam_001.json", "cam_001.png", "cam_001_color.png"]
    back = cv2.imread(str(tmp_path / "cam_001_color.png"))
    assert (back[5:10, 5:10] == (0, 0, 128)).all() and back[:5].sum() == 0
