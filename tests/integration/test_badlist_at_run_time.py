"""``seg-client infer --group`` against a real tritonserver leaves out the pictures badlisted after
the group's CSV was written (nothing of them is sent: Triton's own count says so), and says how
many."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from store.segment_store import SegmentStore
from tests.conftest import MODEL, answered_requests, run_cli

pytestmark = pytest.mark.integration
GROUP = "g"


def test_infer_group_leaves_out_what_is_badlisted_now(triton, tmp_path):
    from tests.fixtures.synthetic import make_scene

    root = tmp_path / "root"
    folder = root / "DATA" / "pictures" / GROUP
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    names = [f"p{i}.jpg" for i in range(4)]
    for name in names:
        cv2.imwrite(str(folder / name), make_scene(96, 128, rng)[0])
    (root / "DATA" / "datasets").mkdir(parents=True)
    with open(root / "DATA" / "datasets" / f"{GROUP}.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image"], *([f"{GROUP}/{n}"] for n in names)])
    with SegmentStore.open(f"sqlite:///{root / 'DATA' / 'segments.db'}") as store:
        store.push_badlist(["p1"], source="bad.txt")  # by stem, after the CSV was written

    before = answered_requests(triton)
    proc = run_cli(
        "seg-client", "infer", "--group", GROUP, "--model", MODEL, "--url", triton.grpc_url,
        "--data-root", str(root),
    )  # fmt: skip
    assert "1 badlisted images left out" in proc.stderr, proc.stderr
    assert proc.stdout.startswith("3 written, 0 skipped"), proc.stdout
    assert answered_requests(triton) - before == 3
    out = root / "TEST" / "inference" / GROUP / GROUP
    assert sorted(p.name for p in out.glob("*.json")) == ["p0.json", "p2.json", "p3.json"]
