"""LabelMe files read: the document, its image (a file or embedded), and its shapes' pixels."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from annotations.errors import AnnotationFormatError
from annotations.labelme import labelme_image, read_labelme, shape_mask

H, W = 12, 16


def _shape(kind, points, label="x"):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}}


def _document(path, shapes, **fields):
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, **fields}))
    return path


def test_a_document_reads_and_what_is_not_one_says_why(tmp_path):
    good = _document(tmp_path / "good.json", [_shape("polygon", [[1, 1], [5, 1], [5, 5]])], imagePath="a.png")
    assert read_labelme(good)["shapes"][0]["label"] == "x"
    for name, text, why in [
        ("broken.json", "{not json", "invalid LabelMe JSON (Expecting property name"),
        ("list.json", "[1, 2]", "invalid LabelMe JSON (no 'shapes': not a LabelMe file)"),
        ("shapes.json", '{"shapes": [1]}', "invalid LabelMe JSON ('shapes' is not a list of objects)"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(AnnotationFormatError) as caught:
            read_labelme(tmp_path / name)
        assert str(caught.value).startswith(why), caught.value


def test_the_image_is_the_file_it_names_else_the_one_it_embeds(tmp_path):
    pixels = np.full((H, W, 3), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    named = labelme_image(tmp_path / "a.json", {"imagePath": "a.png", "imageData": None})
    assert (
        named.path == tmp_path / "a.png" and named.embedded is None and np.array_equal(named.pixels, pixels)
    )

    png = cv2.imencode(".png", pixels)[1].tobytes()
    data = base64.b64encode(png).decode()
    embedded = labelme_image(tmp_path / "b.json", {"imagePath": "gone.png", "imageData": data})
    assert embedded.path is None and embedded.embedded == png and np.array_equal(embedded.pixels, pixels)

    assert labelme_image(tmp_path / "c.json", {"imagePath": "gone.png"}) is None
    with pytest.raises(AnnotationFormatError, match="imageData: not an image"):
        labelme_image(tmp_path / "d.json", {"imageData": base64.b64encode(b"not an image").decode()})
    with pytest.raises(AnnotationFormatError, match="imageData is not base64"):
        labelme_image(tmp_path / "e.json", {"imageData": "abc"})


def test_shapes_cover_their_boundary_pixels_as_labelme_draws_them():
    # points are pixel centres: a rectangle from (1, 2) to (4, 3) covers columns 1..4, rows 2..3
    rectangle = shape_mask(_shape("rectangle", [[4, 3], [1, 2]]), H, W)
    expected = np.zeros((H, W), bool)
    expected[2:4, 1:5] = True
    assert np.array_equal(rectangle, expected)
    square = shape_mask(_shape("polygon", [[1, 2], [4, 2], [4, 3], [1, 3]]), H, W)
    assert np.array_equal(square, expected)
    untyped = shape_mask({"label": "x", "points": [[1, 2], [4, 2], [4, 3], [1, 3]]}, H, W)
    assert np.array_equal(untyped, expected)  # no shape_type: a polygon
    circle = shape_mask(_shape("circle", [[8, 6], [8, 9]]), H, W)
    assert circle[6, 8] and circle[3, 8] and circle[9, 8] and circle[6, 5] and not circle[2, 8]
    assert circle.sum() == np.count_nonzero(cv2.circle(np.zeros((H, W), np.uint8), (8, 6), 3, 1, -1))


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (_shape("line", [[0, 0], [5, 5]]), "shape_type 'line' has no area"),
        (_shape("point", [[3, 3]]), "shape_type 'point' has no area"),
        (_shape("polygon", [[0, 0], [5, 5]]), "polygon with fewer than 3 points"),
        (_shape("rectangle", [[0, 0]]), "rectangle without 2 points"),
        (_shape("circle", [[0, 0], [1, 1], [2, 2]]), "circle without centre and rim point"),
        (_shape("polygon", [[0, 0], ["a", 1], [3, 3]]), "points are not [[x, y], ...]"),
        (_shape("polygon", [1, 2, 3, 4, 5, 6]), "points are not [[x, y], ...]"),
    ],
)
def test_a_shape_without_area_says_why(shape, reason):
    with pytest.raises(AnnotationFormatError) as caught:
        shape_mask(shape, H, W)
    assert str(caught.value) == reason
