"""``seg-client meta build`` when things go wrong, against a real tritonserver (and PostgreSQL):
a run SIGKILLed mid-model resumes image by image (Triton's own request count says only the
unanswered pictures are sent again, and ret_meta.json equals an uninterrupted run's), and two
workers sharing a group each list every failure, whichever worker met it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import BIN, MODEL, answered_requests
from tests.helpers import constant_png

pytestmark = pytest.mark.integration
GROUP = "big"


def _root(tmp_path: Path, good: int, bad: tuple[int, ...] = ()) -> Path:
    """DATA/pictures/big/ with ``good`` small scenes (i0000.jpg...) and, at the indices ``bad``,
    PNGs whose header says 70 megapixels (the server refuses them, INVALID_ARGUMENT), listed by
    DATA/datasets/big.txt."""
    import cv2

    from tests.fixtures.synthetic import make_scene

    root = tmp_path / "root"
    folder = root / "DATA" / "pictures" / GROUP
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    names = []
    for i in range(good + len(bad)):
        if i in bad:
            (folder / f"i{i:04d}.png").write_bytes(constant_png(10000, 7000))
            names.append(f"{GROUP}/i{i:04d}.png")
        else:
            cv2.imwrite(str(folder / f"i{i:04d}.jpg"), make_scene(96, 128, rng)[0])
            names.append(f"{GROUP}/i{i:04d}.jpg")
    (root / "DATA" / "datasets").mkdir(parents=True)
    (root / "DATA" / "datasets" / f"{GROUP}.txt").write_text("\n".join(names) + "\n")
    return root


def _configure(root: Path, url: str, concurrency: int, db: str | None = None) -> None:
    config: dict = {"triton": {"url": url, "concurrency": concurrency}, "models": [{"name": MODEL}]}
    if db is not None:
        config["store"] = {"url": db}
    (root / "segstack.yaml").write_text(yaml.safe_dump(config))


def _settled(triton) -> int:
    """Triton's count once the requests still in flight (a killed client's) are answered."""
    last = answered_requests(triton)
    while True:
        time.sleep(0.5)
        now = answered_requests(triton)
        if now == last:
            return now
        last = now


def _build(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "seg-client"), "meta", "build", GROUP, "--data-root", str(root), "--lease", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done(build: subprocess.Popen, code: int = 0) -> tuple[str, str]:
    out, err = build.communicate(timeout=300)
    assert build.returncode == code, f"meta build exited {build.returncode}:\n{out}\n{err}"
    return out, err


def _document(root: Path) -> dict:
    return json.loads((root / "TEST" / "ret_meta" / GROUP / "ret_meta.json").read_text())


def _records(root: Path) -> int:
    """The per-image answers meta build has written for the model."""
    return len(list((root / "TEST" / "ret_meta" / GROUP / "models" / MODEL / GROUP).glob("i*.json")))


def test_a_killed_build_resumes_image_by_image(triton, tmp_path):
    count = 24
    root = _root(tmp_path, count)
    _configure(root, triton.grpc_url, concurrency=1)
    reference = tmp_path / "reference"  # the same pictures, built in one go
    shutil.copytree(root, reference)

    first = _build(root)
    deadline = time.monotonic() + 120
    while _records(root) < 6:  # some answered, most not
        assert first.poll() is None, "meta build ended before it could be killed:\n" + first.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    kept = _records(root)
    assert kept < count, "killed too late: every picture was answered"
    before = _settled(triton)

    out, _ = _done(_build(root))
    asked = answered_requests(triton) - before
    # only the pictures without an answer are sent again (at most the one whose answer was being
    # recorded at the kill besides)
    assert count - kept <= asked <= count - kept + 1, (kept, asked, out)
    assert f"{MODEL} {asked} asked / {count - asked} kept" in out, out

    _done(_build(reference))
    document, expected = _document(root), _document(reference)
    for each in (document, expected):
        each.pop("built_at")
    assert document == expected
    assert "failures" not in document and len(document["images"]) == count
    again, _ = _done(_build(root))
    assert f"{MODEL} 0 asked / {count} kept" in again
    print(f"killed after {kept} of {count} answers; the re-run asked {asked}")


def test_shared_workers_each_list_every_failure(triton, postgres_server, tmp_path):
    from store.segment_store import SegmentStore

    bad = (1, 6, 10)  # three: the report shows three failures of one kind, then a count
    root = _root(tmp_path, 11, bad)
    db = postgres_server.create_database()
    SegmentStore.open(db).close()  # the store, made once (not by two workers at the same moment)
    _configure(root, triton.grpc_url, concurrency=1, db=db)
    names = {f"{GROUP}/i{i:04d}.png" for i in bad}

    workers = [_build(root), _build(root)]
    outputs = [_done(w, code=1) for w in workers]
    document = _document(root)
    assert set(document["failures"]) == names, document.get("failures")
    for reason in document["failures"].values():
        assert "over this server's limit" in reason[MODEL], reason
    assert len(document["images"]) == 14
    for out, err in outputs:  # each worker's report names every failure, its own and the other's
        assert "3 images with a missing result" in out, (out, err)
        for name in names:
            assert f"{name}: {MODEL}: " in err, (name, err)
    assert any("(met by another worker)" in err for _, err in outputs), outputs

    # the pictures replaced by good ones: a re-run asks about those only, and lists no failure
    import cv2

    from tests.fixtures.synthetic import make_scene

    rng = np.random.default_rng(8)
    for i in bad:
        cv2.imwrite(str(root / "DATA" / "pictures" / GROUP / f"i{i:04d}.png"), make_scene(96, 128, rng)[0])
    before = answered_requests(triton)
    out, err = _done(_build(root))
    assert answered_requests(triton) - before == len(bad), (out, err)
    fixed = _document(root)
    assert "failures" not in fixed and "missing result" not in out
    assert all(MODEL in image["results"] for image in fixed["images"])


def test_a_worker_joining_late_does_not_ask_again_what_failed(triton, postgres_server, tmp_path):
    """The late worker offers the images again, the failed one among them (its claim ended with
    its failure): its mark says it failed in this run, so no worker sends it a second time."""
    from store.segment_store import SegmentStore

    count = 120
    root = _root(tmp_path, count, bad=(0,))
    db = postgres_server.create_database()
    SegmentStore.open(db).close()
    _configure(root, triton.grpc_url, concurrency=1, db=db)
    mark = root / "TEST" / "ret_meta" / GROUP / "answers" / MODEL / GROUP / "i0000.json"
    before = answered_requests(triton)

    first = _build(root)
    deadline = time.monotonic() + 120
    while not (mark.exists() and "failed" in json.loads(mark.read_text())):
        assert first.poll() is None, "meta build ended early:\n" + first.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    second = _build(root)
    (out_first, err_first), (out_second, err_second) = _done(first, code=1), _done(second, code=1)
    for out in (out_first, out_second):  # both asked some: the second joined while the first ran
        asked = int(out.split(f"{MODEL} ")[1].split(" asked")[0])
        assert asked > 0, (out_first, out_second)
    # every picture sent once, the refused one too (an error the ensemble's decoding step
    # returns is a completed request by Triton's count)
    assert answered_requests(triton) - before == count + 1
    for err in (err_first, err_second):
        assert err.count(f"{GROUP}/i0000.png: {MODEL}: ") == 1, err
    assert set(_document(root)["failures"]) == {f"{GROUP}/i0000.png"}
