"""Mask PNGs: instance index masks (8 and 16 bits), their colours, and the instance mask files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from annotations.errors import AnnotationFormatError
from annotations.mask_png import (
    class_color,
    color_name,
    instance_color,
    instance_index,
    read_index_png,
    read_instance_files,
    write_instance_files,
    write_png,
)

H, W = 10, 12


def _box(x0, y0, x1, y1, h=H, w=W):
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def test_values_in_order_and_the_first_keeps_an_overlap():
    labels = instance_index([_box(0, 0, 6, 6), _box(4, 4, 10, 10), _box(1, 1, 2, 2)], H, W)
    assert labels.dtype == np.uint8
    assert labels[5, 5] == 1 and labels[8, 8] == 2 and labels[0, 11] == 0
    assert not (labels == 3).any()  # hidden entirely by the first


def test_masks_from_a_generator_are_read_one_at_a_time_and_give_the_same_labels():
    masks = [_box(i % 30, i // 30, i % 30 + 1, i // 30 + 1, 20, 30) for i in range(300)]
    held: list[int] = []

    def one_at_a_time():
        for mask in masks:
            held.append(1)
            yield mask
            held.pop()

    labels = instance_index(one_at_a_time(), 20, 30, count=len(masks))
    assert not held and labels.dtype == np.uint16
    assert np.array_equal(labels, instance_index(masks, 20, 30))


def test_past_255_values_the_mask_is_16_bit_and_stays_so_on_disk(tmp_path):
    masks = [_box(i % 30, i // 30, i % 30 + 1, i // 30 + 1, 20, 30) for i in range(300)]
    labels = instance_index(masks, 20, 30)
    assert labels.dtype == np.uint16 and labels.max() == 300
    write_png(tmp_path / "x.png", labels)
    back = read_index_png(tmp_path / "x.png")
    assert back.dtype == np.uint16 and np.array_equal(back, labels)
    with pytest.raises(ValueError, match="a 16-bit PNG holds at most 65535"):
        instance_index([np.zeros((1, 1))] * 65536, 1, 1)
    with pytest.raises(ValueError, match="mask 1 is 3×2, not 12×10"):
        instance_index([np.zeros((2, 3))], H, W)


def test_colours_voc_for_instances_and_the_table_for_classes():
    labels = np.arange(301, dtype=np.uint16).reshape(7, 43)
    color = instance_color(labels)
    assert color.dtype == np.uint8 and color.shape == (7, 43, 3) and (color[0, 0] == 0).all()
    assert len({tuple(c) for c in color.reshape(-1, 3)}) == 301
    assert tuple(color.reshape(-1, 3)[2][::-1]) == (0, 128, 0)  # value 2, VOC green, BGR on disk
    index = np.array([[0, 1, 2, 3]], np.uint8)
    assert class_color(index, [(0, 0, 0), (255, 0, 0), (0, 0, 255)]).tolist() == [
        [[0, 0, 0], [0, 0, 255], [255, 0, 0], [0, 0, 0]]
    ]


def test_instance_files_written_then_read_back(tmp_path):
    labels = instance_index([_box(0, 0, 4, 4), _box(6, 6, 12, 10)], H, W)
    record = {"image": "cam/1.jpg", "width": W, "height": H, "segments": [{"value": 1}, {"value": 2, "x": 3}]}
    write_instance_files(tmp_path, "cam_1", labels, record, color=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam_1.json", "cam_1.png", color_name("cam_1")]
    assert color_name("cam_1") == "cam_1_color.png"
    back, back_record = read_instance_files(tmp_path, "cam_1")
    assert np.array_equal(back, labels) and back_record == record
    colour = cv2.imread(str(tmp_path / "cam_1_color.png"))
    assert (colour[0, 0] == (0, 0, 128)).all() and (colour[9, 11] == (0, 128, 0)).all()


def test_instance_files_that_do_not_agree_are_refused(tmp_path):
    labels = instance_index([_box(0, 0, 4, 4), _box(6, 6, 12, 10)], H, W)
    write_instance_files(
        tmp_path, "a", labels, {"image": "a", "width": W, "height": H, "segments": [{"value": 1}]}
    )
    with pytest.raises(AnnotationFormatError, match=r"a.png has values its record does not list: \[2\]"):
        read_instance_files(tmp_path, "a")
    (tmp_path / "b.json").write_text(json.dumps({"width": W + 1, "height": H, "segments": []}))
    write_png(tmp_path / "b.png", labels)
    with pytest.raises(AnnotationFormatError, match=r"b.png is \(10, 12\), its record says \(10, 13\)"):
        read_instance_files(tmp_path, "b")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(AnnotationFormatError, match=r"c\.json: not an instance mask record"):
        read_instance_files(tmp_path, "c")
    write_png(tmp_path / "d.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(AnnotationFormatError, match="not a one-channel 8- or 16-bit index mask"):
        read_index_png(tmp_path / "d.png")
    (tmp_path / "e.png").write_bytes(b"not a png")
    with pytest.raises(AnnotationFormatError, match="not a PNG OpenCV reads"):
        read_index_png(tmp_path / "e.png")
