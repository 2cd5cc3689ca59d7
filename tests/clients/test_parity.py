import numpy as np

from clients.inference.parity import Dets, compare


def _dets(boxes, scores, classes, shape=(50, 50)):
    masks = []
    for x1, y1, x2, y2 in boxes:
        m = np.zeros(shape, np.uint8)
        m[int(y1) : int(y2), int(x1) : int(x2)] = 1
        masks.append(m)
    return Dets(np.array(boxes, float).reshape(-1, 4), np.array(scores), np.array(classes, int), masks)


def test_matches_within_class_and_reports_missing_and_extra():
    ref = _dets([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 1])
    served = _dets([[0, 0, 10, 11], [40, 40, 49, 49]], [0.89, 0.95], [0, 0])
    result = compare(ref, served, threshold=0.5)
    assert result.matched == 1
    assert result.missing == [0.8, 0.7]  # wrong place; wrong class
    assert result.extra == [0.95]
    assert abs(result.box_ious[0] - 100 / 110) < 1e-9 and abs(result.score_diffs[0] - 0.01) < 1e-9


def test_detections_near_the_threshold_may_fall_either_side():
    ref = _dets([[0, 0, 10, 10]], [0.51], [0])
    assert compare(ref, _dets([], [], []), threshold=0.5).missing == []
