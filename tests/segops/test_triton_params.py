"""Per-request parameters: parsed, checked, and bounded by what the repository was built with."""

import json

import pytest

from segops.triton_params import request_overrides

DEFAULTS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


def test_a_request_cannot_raise_max_det_above_the_ceiling():
    asked = json.dumps({"conf": "0", "max_det": str(10**9)})
    values = request_overrides(asked, DEFAULTS, {"max_det": 300})
    assert values == {"conf": 0.0, "iou": 0.7, "max_det": 300}


def test_a_request_may_lower_max_det_and_without_a_ceiling_raise_it():
    assert request_overrides('{"max_det": "3"}', DEFAULTS, {"max_det": 300})["max_det"] == 3
    assert request_overrides('{"max_det": 500}', DEFAULTS)["max_det"] == 500


@pytest.mark.parametrize(
    ("given", "message"),
    [({"max_det": "lots"}, "max_det='lots' is not an integer"), ({"conf": 2}, "conf=2.0 must be between")],
)
def test_bad_values_name_the_parameter(given, message):
    with pytest.raises(ValueError, match=message):
        request_overrides(json.dumps(given), DEFAULTS, {"max_det": 300})
