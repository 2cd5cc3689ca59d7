"""Commands that race on one data root or one store, as real processes started at the same moment:
nothing one of them writes is lost or half-written by the other."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import BIN, MODEL, run_cli
from tests.fixtures.http_files import http_files

pytestmark = pytest.mark.integration
ROUNDS = 3


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "seg-client"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


# --- two groups pull at once ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def images_server(tmp_path_factory):
    served = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(7)
    for i in range(10):
        cv2.imwrite(str(served / f"p{i}.png"), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    with http_files(served) as server:
        yield server


def _url(server, group: str) -> str:
    return server.url(f"lists/{group}.json")


def _manifest(folder: Path, name: str, ids: range) -> Path:
    # each answer takes a second: every run has all its rows in flight while the other starts
    rows = [{"url": f"slow/p{i}.png?delay=1", "id": f"p{i}"} for i in ids]
    path = folder / f"{name}.json"
    path.write_text(json.dumps([{**row, "url": f"../{row['url']}"} for row in rows]))
    return path


@pytest.mark.parametrize("groups", [("a", "b"), ("a", "a")], ids=["two groups", "one group twice"])
def test_two_pulls_at_once_keep_every_group_of_every_picture(tmp_path, images_server, groups):
    lists = images_server.root / "lists"
    lists.mkdir(exist_ok=True)
    spans = {"a": range(0, 8), "b": range(3, 10)}
    for g in set(groups):
        _manifest(lists, g, spans[g])
    for round_ in range(ROUNDS):
        root = tmp_path / f"root{round_}"
        pull = ["groups", "pull", "--data-root", str(root), "-j", "16"]
        runs = [_start(*pull, "--group", g, "--manifest", _url(images_server, g)) for g in groups]
        for run in runs:
            _finish(run)
        meta = root / "DATA" / "meta"
        for i in range(10):
            wanted = sorted(g for g in set(groups) if i in spans[g])
            path = meta / f"p{i}.json"
            if not wanted:
                assert not path.exists()
                continue
            record = json.loads(path.read_text())  # whole: it parses
            assert sorted(record["groups"]) == wanted, (round_, i, record)
            assert (root / "DATA" / "pictures" / record["picture"]).read_bytes() == (
                images_server.root / f"p{i}.png"
            ).read_bytes()
        assert not [p for p in meta.rglob(".*.tmp")], "a temporary file was left behind"
        for g in set(groups):
            listed = (root / "DATA" / "datasets" / f"{g}.csv").read_text().splitlines()[1:]
            assert listed == [f"p{i}.png," for i in spans[g]]


# --- segments badlist push while segments build runs ---------------------------------------------


@pytest.fixture
def one_group(tmp_path, sample_images) -> Path:
    """DATA/pictures/scenes with three sample images, listed by DATA/datasets/few.txt."""
    root = tmp_path / "root"
    pictures = root / "DATA" / "pictures" / "scenes"
    pictures.mkdir(parents=True)
    names = ["scene0.jpg", "scene1.png", "scene4.jpg"]
    for name in names:
        shutil.copy(sample_images / name, pictures / name)
    (root / "DATA" / "datasets").mkdir(parents=True)
    (root / "DATA" / "datasets" / "few.txt").write_text("".join(f"scenes/{n}\n" for n in names))
    return root


def _build_args(triton, root: Path, db: str) -> list[str]:
    return ["segments", "build", "--group", "few", "--model", MODEL, "--url", triton.grpc_url,
            "--db", db, "--data-root", str(root)]  # fmt: skip


def _exported(db: str, out: Path) -> set[str]:
    run_cli("seg-client", "segments", "export", "--group", "few", "--format", "coco", "--out", str(out),
            "--db", db)  # fmt: skip
    return {image["file_name"] for image in json.loads(out.read_text())["images"]}


def _badlisted(db: str) -> dict[str, bool]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT path, badlisted FROM images"))
            return {path: bool(flag) for path, flag in rows}
    finally:
        engine.dispose()


def test_an_image_badlisted_while_a_build_runs_stays_badlisted(triton, one_group, database_url, tmp_path):
    badlist = tmp_path / "badlist.txt"
    badlist.write_text("scene1.png\n")
    for round_ in range(ROUNDS):
        db = database_url if round_ == 0 else _fresh(database_url, tmp_path, round_)
        _make_tables(db)
        build = _start(*_build_args(triton, one_group, db))
        push = _start("segments", "badlist", "push", str(badlist), "--db", db)
        _finish(build)
        _finish(push)
        flags = _badlisted(db)  # a build that saw the badlist first does not store it at all
        assert flags.get("scenes/scene1.png", True), (round_, flags)
        assert _exported(db, tmp_path / f"coco{round_}.json") == {"scenes/scene0.jpg", "scenes/scene4.jpg"}


def _make_tables(db: str) -> None:
    """The store's tables, as a first build makes them (a push refuses a store that does not exist)."""
    from store.segment_store import SegmentStore

    SegmentStore.open(db, create=True).close()


def _fresh(database_url: str, tmp_path: Path, round_: int) -> str:
    """Another empty database of the same kind as ``database_url``."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'segments{round_}.db'}"
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = f"{engine.url.database}_r{round_}"
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return str(engine.url.set(database=name).render_as_string(hide_password=False))


def _waiting(db: str, event: str, query: str) -> bool:
    """Whether a session of another process waits for a lock of kind ``event`` in ``query``."""
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND wait_event = :event"
                ),
                {"event": event},
            ).all()
    finally:
        engine.dispose()
    return any(query in row[0] for row in rows)


def _until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_push_between_a_saves_badlist_read_and_its_insert_is_not_lost(
    triton, one_group, postgres_server, tmp_path
):
    """The interleaving that lost the flag, made certain: the build's save has read the badlist
    and waits to insert its image (the test holds a lock on the images table) when the push runs."""
    db = postgres_server.create_database()
    badlist = tmp_path / "badlist.txt"
    badlist.write_text("scene1.png\n")
    _make_tables(db)
    holder = create_engine(db)
    conn = holder.connect()
    try:
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE images IN SHARE MODE"))  # reads go on, inserts wait
        build = _start(*_build_args(triton, one_group, db))
        _until(lambda: _waiting(db, "relation", "INSERT INTO images"), "the build's insert to wait")
        push = _start("segments", "badlist", "push", str(badlist), "--db", db)
        pushed_or_waiting = lambda: push.poll() is not None or _waiting(db, "advisory", "pg_advisory")  # noqa: E731
        _until(pushed_or_waiting, "the push to end or wait")
        transaction.rollback()
    finally:
        conn.close()
        holder.dispose()
    _finish(build)
    _finish(push)
    assert _badlisted(db)["scenes/scene1.png"]
    assert _exported(db, tmp_path / "coco.json") == {"scenes/scene0.jpg", "scenes/scene4.jpg"}
