"""One network call over the requests of a dynamic batch, and what happens when it fails."""

import numpy as np

from segops.batched_runs import run_batches


def _double(batch):
    if batch["x"].shape[0] > 1 and np.isnan(batch["x"]).any():
        raise ValueError("a NaN in the batch")
    if np.isnan(batch["x"]).any():
        raise ValueError("this one")
    return [batch["x"] * 2]


def test_one_call_split_back_per_request():
    calls = []

    def run(batch):
        calls.append(batch["x"].shape)
        return [batch["x"] + 1]

    feeds = [{"x": np.zeros((1, 3))}, {"x": np.ones((2, 3))}]
    out = run_batches(run, feeds, ["x"])
    assert calls == [(3, 3)]
    assert [o[0].shape for o in out] == [(1, 3), (2, 3)]
    np.testing.assert_array_equal(out[1][0], np.full((2, 3), 2.0))


def test_a_failure_is_the_failing_requests_own():
    feeds = [{"x": np.ones((1, 2))}, {"x": np.full((1, 2), np.nan)}]
    out = run_batches(_double, feeds, ["x"])
    np.testing.assert_array_equal(out[0][0], np.full((1, 2), 2.0))
    assert isinstance(out[1], ValueError) and str(out[1]) == "this one"


def test_feeds_of_different_shapes_run_alone():
    feeds = [{"x": np.ones((1, 2))}, {"x": np.ones((1, 3))}]
    out = run_batches(lambda b: [b["x"] * 2], feeds, ["x"])
    assert [o[0].shape for o in out] == [(1, 2), (1, 3)]


def test_no_feeds():
    assert run_batches(_double, [], ["x"]) == []
