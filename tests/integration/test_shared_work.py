"""Several seg-client workers on one group, coordinated through a real PostgreSQL store: each
image is done by one of them and stored once, also when one worker is killed mid-run (its
claims return to the others after the lease)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from tests.conftest import BIN, MODEL, answered_requests, run_cli

pytestmark = pytest.mark.integration
LEASE = "3"
CONCURRENCY = 2
IN_FLIGHT_BOUND = 2 * 2 * CONCURRENCY  # a killed worker's claimed batch plus what it had sent


def _root(tmp_path: Path, count: int) -> Path:
    """DATA/pictures/big/ with ``count`` small generated scenes, listed by DATA/datasets/big.txt."""
    import cv2

    from tests.fixtures.synthetic import make_scene

    root = tmp_path / "root"
    folder = root / "DATA" / "pictures" / "big"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    names = []
    for i in range(count):
        cv2.imwrite(str(folder / f"i{i:04d}.jpg"), make_scene(96, 128, rng)[0])
        names.append(f"big/i{i:04d}.jpg")
    (root / "DATA" / "datasets").mkdir(parents=True)
    (root / "DATA" / "datasets" / "big.txt").write_text("\n".join(names) + "\n")
    return root


def _rows(db: str, sql: str) -> list[tuple]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _stored(db: str) -> int:
    try:
        return _rows(db, "SELECT count(*) FROM segmentations")[0][0]
    except ProgrammingError:  # the first worker has not made the tables yet
        return 0


def _workers(count: int, args: list[str]) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [str(BIN / "seg-client"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(count)
    ]


def _kill_when(worker: subprocess.Popen, condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert worker.poll() is None, (
            "the worker ended before it could be killed:\n" + worker.communicate()[0]
        )
        assert time.monotonic() < deadline
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)


def _finish(workers: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        assert worker.returncode == 0, output
        outputs.append(output)
    return outputs


def test_three_workers_segment_300_images_once_with_one_killed(triton, postgres_server, tmp_path):
    root = _root(tmp_path, 300)
    db = postgres_server.create_database()
    before = answered_requests(triton)
    args = ["segments", "build", "--group", "big", "--model", MODEL, "--url", triton.grpc_url, "--db", db,
            "--data-root", str(root), "-j", str(CONCURRENCY), "--lease", LEASE]  # fmt: skip
    workers = _workers(3, args)
    _kill_when(workers[0], lambda: _stored(db) >= 60)
    outputs = _finish(workers[1:])
    assert _rows(db, "SELECT count(*), count(DISTINCT image_id) FROM segmentations") == [(300, 300)]
    assert _rows(db, "SELECT count(*) FROM images") == [(300,)]
    assert _rows(db, "SELECT count(*) FROM work_claims") == [(0,)]  # nothing left claimed
    mismatched = _rows(
        db,
        "SELECT s.image_id FROM segmentations s LEFT JOIN segments g ON g.image_id = s.image_id "
        "GROUP BY s.image_id, s.segments HAVING count(g.id) != s.segments",
    )
    assert mismatched == []  # every image's segments stored once, as many as its record says
    done = [int(re.search(r"(\d+) segmented", o).group(1)) for o in outputs]
    killed_stored = 300 - sum(done)
    assert killed_stored > 0 and all(n > 0 for n in done), outputs  # all three did some
    assert all("300/300" in o for o in outputs), outputs  # each bar ends full: the job is done
    answered = answered_requests(triton) - before
    assert 300 <= answered <= 300 + IN_FLIGHT_BOUND, (answered, outputs)  # the killed one's last claims
    print("segments build, 3 workers, one killed:", done, "+", killed_stored, "by the killed one;",
          answered, "requests answered;", [o.strip().splitlines()[-1] for o in outputs])  # fmt: skip


def test_workers_share_an_infer_folder_through_the_store(triton, postgres_server, tmp_path):
    root = _root(tmp_path, 60)
    db = postgres_server.create_database()
    out = tmp_path / "out"
    before = answered_requests(triton)
    args = ["infer", "--group", "big", "--model", MODEL, "--url", triton.grpc_url, "--db", db,
            "--data-root", str(root), "--out", str(out), "-j", str(CONCURRENCY),
            "--lease", LEASE]  # fmt: skip
    workers = _workers(2, args)
    _kill_when(workers[0], lambda: len(list(out.rglob("i*.json"))) >= 10)
    outputs = _finish(workers[1:])
    assert not (out / "failures.json").exists()
    records = sorted(out.rglob("i*.json"))
    assert len(records) == 60
    assert "60/60" in outputs[0], outputs
    for path in records:
        assert json.loads(path.read_text())["model"] == MODEL
    assert _rows(db, "SELECT count(*) FROM work_claims") == [(0,)]
    answered = answered_requests(triton) - before
    assert 60 <= answered <= 60 + IN_FLIGHT_BOUND, (answered, outputs)

    again = run_cli("seg-client", *args)  # a re-run finds everything done
    assert "0 written, 60 skipped" in again.stdout
    last = outputs[0].strip().splitlines()[-1]
    print("infer, 2 workers, one killed:", answered, "requests answered;", last)


def test_two_meta_builds_share_each_model_and_write_the_same_ret_meta(triton, postgres_server, tmp_path):
    root = _root(tmp_path, 40)
    db = postgres_server.create_database()
    run_cli("seg-client", "segments", "build", "--group", "big", "--model", MODEL, "--url", triton.grpc_url,
            "--db", db, "--data-root", str(root))  # fmt: skip
    config = {"triton": {"url": triton.grpc_url}, "store": {"url": db}, "models": [{"name": MODEL}]}
    (root / "segstack.yaml").write_text(yaml.safe_dump(config))
    before = answered_requests(triton)
    workers = _workers(2, ["meta", "build", "big", "--data-root", str(root), "--lease", LEASE])
    outputs = _finish(workers)
    assert answered_requests(triton) - before == 40, outputs  # every picture asked once, by one of them
    document = json.loads((root / "TEST" / "ret_meta" / "big" / "ret_meta.json").read_text())
    assert len(document["images"]) == 40
    assert all(MODEL in image["results"] for image in document["images"])
    stamp = json.loads((root / "TEST" / "ret_meta" / "big" / "models" / MODEL / "model.json").read_text())
    assert len(stamp["images"]) == 40
    for output in outputs:
        assert "big: 40 images" in output, output


def test_infer_db_needs_postgresql(triton, tmp_path):
    """A folder run given --db is a shared run: SQLite cannot share it. (With --group, --db is
    also the store whose badlist is read, so an SQLite one is taken for that.)"""
    root = _root(tmp_path, 1)
    sqlite = f"sqlite:///{tmp_path / 's.db'}"
    source = root / "DATA" / "pictures" / "big"
    missing = run_cli("seg-client", "infer", "--group", "big", "--model", MODEL, "--url", triton.grpc_url,
                      "--db", sqlite, "--data-root", str(root), check=False)  # fmt: skip
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith(f"seg-client: error: no segment store at {tmp_path / 's.db'}")
    result = run_cli("seg-client", "infer", "--source", str(source), "--model", MODEL,
                     "--url", triton.grpc_url, "--db", sqlite, "--out", str(tmp_path / "out"),
                     check=False)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "workers share a run through a PostgreSQL store" in result.stderr
