"""``seg-client groups pull`` against a real HTTP server on loopback (tests/fixtures/http_files.py)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import signal
import socketserver
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clients.groups.cli import ByteSize
from clients.groups.download import Fetcher, FetchError, FetchSettings, check_picture, default_deadline
from clients.groups.manifest import read_manifest
from clients.groups.pull import pull_group
from clients.triton.image_sources import images_in_group
from segcontract.limits import DEFAULT_MAX_PIXELS
from store.layout import DataLayout
from tests.fixtures.child_server import REPO_ROOT
from tests.fixtures.http_files import closed_port_url, http_files

pytestmark = pytest.mark.integration

FAST = ("--retries", "2", "--retry-wait", "0.01")  # keep the retried failures quick


def _image(path: Path, seed: int, size=(48, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return path.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("served")
    for i, name in enumerate(["a.png", "b.jpg", "c.png", "d.jpg", "e.png"]):
        _image(root / name, seed=i)
    (root / "blob").write_bytes((root / "a.png").read_bytes())  # a PNG behind a URL without a suffix
    (root / "notes.jpg").write_bytes(b"these are not the pixels you are looking for\n" * 20)
    return root


@pytest.fixture(scope="module")
def server(served):
    with http_files(served) as s:
        yield s


@pytest.fixture(autouse=True)
def fresh_server(server):
    server.reset()


def _command():
    """seg-client itself once clients/cli.py registers the group, else the group on its own."""
    from clients.cli import main

    if "groups" in main.commands:
        return main, ["groups", "pull"]
    from clients.groups.cli import groups

    return groups, ["pull"]


def _pull(manifest: Path | str, root: Path, *args: str, group: str = "g"):
    command, prefix = _command()
    argv = [*prefix, "--group", group, "--manifest", str(manifest), "--data-root", str(root), *FAST, *args]
    return CliRunner().invoke(command, argv, catch_exceptions=False)


def _manifest(folder: Path, rows: list[dict], name: str = "manifest.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(rows))
    return path


def _files(root: Path) -> list[str]:
    """Every file under ``root`` but the pulls' lock files (DATA/meta/.locks)."""
    files = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
    return sorted(p.as_posix() for p in files if ".locks" not in p.parts)


def _csv(root: Path, group: str = "g") -> list[str]:
    return (root / "DATA" / "datasets" / f"{group}.csv").read_text().splitlines()


def test_flaky_image_lands_truncated_one_fails_and_nothing_of_it_lands(tmp_path, server, served):
    manifest = _manifest(
        tmp_path,
        [
            {"url": server.url("fail-once/a.png"), "label": "cat", "camera": "left"},
            {"url": server.url("truncate/b.jpg"), "id": "b", "label": "dog"},
            {"url": server.url("c.png"), "label": "dog"},
        ],
    )
    root = tmp_path / "root"
    result = _pull(manifest, root)

    assert result.exit_code == 1, result.output
    assert f"2 downloaded, 0 already present, 1 failed → {root / 'DATA/datasets/g.csv'}" in result.stdout
    assert "seg-client: failed: b: truncated response (the connection closed after" in result.stderr
    assert "g.failures.json" in result.stderr
    assert server.stats() == {"/fail-once/a.png": 2, "/truncate/b.jpg": 3, "/c.png": 1}
    assert _files(root) == [
        "DATA/datasets/g.csv",
        "DATA/meta/a.json",
        "DATA/meta/c.json",
        "DATA/meta/groups/g.failures.json",
        "DATA/pictures/a.png",
        "DATA/pictures/c.png",
    ]
    pictures = root / "DATA" / "pictures"
    assert (pictures / "a.png").read_bytes() == (served / "a.png").read_bytes()
    meta = json.loads((root / "DATA" / "meta" / "a.json").read_text())
    data = (served / "a.png").read_bytes()
    assert meta == {
        "url": server.url("fail-once/a.png"),
        "label": "cat",
        "camera": "left",
        "id": "a",
        "sha256": _sha(data),
        "size": len(data),
        "width": 64,
        "height": 48,
        "picture": "a.png",
        "groups": ["g"],
    }
    assert _csv(root) == ["image,label", "a.png,cat", "c.png,dog"]
    items = images_in_group("g", DataLayout(root))
    assert [(i.path, i.relative.as_posix()) for i in items] == [
        (pictures / "a.png", "a.png"),
        (pictures / "c.png", "c.png"),
    ]
    failures = json.loads((root / "DATA/meta/groups/g.failures.json").read_text())
    assert list(failures["failed"]) == ["b"]
    assert failures["failed"]["b"]["reason"].startswith("truncated response")


def test_rerun_fetches_nothing_new_and_follows_label_changes(tmp_path, server, served):
    rows = [
        {"url": server.url("a.png"), "label": "cat"},
        {"url": server.url("b.jpg"), "sha256": _sha((served / "b.jpg").read_bytes())},
        {"url": server.url("c.png")},
    ]
    root = tmp_path / "root"
    assert _pull(_manifest(tmp_path, rows), root).exit_code == 0
    assert sum(server.stats().values()) == 3
    server.reset()

    rows[0]["label"] = "lion"
    again = _pull(_manifest(tmp_path, rows), root)
    assert again.exit_code == 0, again.output
    assert "0 downloaded, 3 already present, 0 failed" in again.stdout
    assert server.stats() == {}
    assert json.loads((root / "DATA/meta/a.json").read_text())["label"] == "lion"
    assert _csv(root) == ["image,label", "a.png,lion", "b.jpg,", "c.png,"]

    (root / "DATA/meta/c.json").unlink()  # a picture without its meta is fetched again
    (root / "DATA/pictures/a.png").write_bytes(b"damaged")  # so is one whose bytes changed
    third = _pull(_manifest(tmp_path, rows), root)
    assert "2 downloaded, 1 already present" in third.stdout
    assert server.stats() == {"/a.png": 1, "/c.png": 1}
    assert (root / "DATA/pictures/a.png").read_bytes() == (served / "a.png").read_bytes()


def test_a_changed_sha256_refetches_and_a_mismatch_keeps_the_good_file(tmp_path, server, served):
    first = _image(served / "changing" / "x.png", seed=10)
    url = server.url("changing/x.png")
    root = tmp_path / "root"
    assert _pull(_manifest(tmp_path, [{"url": url, "sha256": _sha(first)}]), root).exit_code == 0

    second = _image(served / "changing" / "x.png", seed=11)
    result = _pull(_manifest(tmp_path, [{"url": url, "sha256": _sha(second)}]), root)
    assert "1 downloaded, 0 already present" in result.stdout
    assert (root / "DATA/pictures/x.png").read_bytes() == second

    server.reset()
    stale = _pull(_manifest(tmp_path, [{"url": url, "sha256": _sha(first)}]), root)
    assert stale.exit_code == 1
    assert "seg-client: failed: x: sha256 differs from the manifest's" in stale.stderr
    assert server.stats() == {"/changing/x.png": 1}  # a wrong checksum is not retried
    assert (root / "DATA/pictures/x.png").read_bytes() == second
    assert json.loads((root / "DATA/meta/x.json").read_text())["sha256"] == _sha(second)
    assert _csv(root) == ["image,label"]  # not what the manifest asks for: not listed


def test_file_urls_relative_paths_and_a_suffixless_url(tmp_path, server, served):
    local = tmp_path / "lists" / "imgs"
    a = _image(local / "near.png", seed=20)
    far = tmp_path / "far away" / "far.jpg"
    b = _image(far, seed=21)
    manifest = tmp_path / "lists" / "group.csv"
    manifest.write_text(f"url,id,label\nimgs/near.png,,1\n{far.as_uri()},,2\n{server.url('blob')},web,3\n")
    root = tmp_path / "root"
    result = _pull(manifest, root)
    assert result.exit_code == 0, result.output
    pictures = root / "DATA/pictures"
    assert (pictures / "near.png").read_bytes() == a
    assert (pictures / "far.jpg").read_bytes() == b
    assert (pictures / "web.png").read_bytes() == (served / "blob").read_bytes()  # the format's suffix
    assert json.loads((root / "DATA/meta/far.json").read_text())["url"] == far.as_uri()
    assert _csv(root) == ["image,label", "near.png,1", "far.jpg,2", "web.png,3"]


def test_a_manifest_url_and_urls_relative_to_it(tmp_path, server, served):
    _manifest(served / "lists", [{"url": "../a.png"}, {"url": "/c.png", "id": "cc"}], "remote.json")
    root = tmp_path / "root"
    result = _pull(server.url("lists/remote.json"), root)
    assert result.exit_code == 0, result.output
    assert server.stats() == {"/lists/remote.json": 1, "/a.png": 1, "/c.png": 1}
    assert _csv(root) == ["image,label", "a.png,", "cc.png,"]

    missing = _pull(server.url("lists/missing.json"), root)
    assert missing.exit_code == 2
    assert missing.stderr.strip().endswith("cannot fetch the manifest: HTTP 404 Not Found")


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("m.json", '[{"url": "a.png"},', "not valid JSON"),
        ("m.json", '{"url": "a.png"}', 'without an "images" list'),
        ("m.json", "[]", "lists no images"),
        ("m.csv", "path,label\na.png,1\n", "no url column"),
        ("m.csv", "url,id\na.png,same\nb.png,same\n", "line 2 and line 3 both have id 'same'"),
        ("m.csv", "url,id\na.png,../up\n", "line 2: id '../up' starts with a dot"),
        ("m.csv", "url\ns3://bucket/a.png\n", "line 2: url 's3://bucket/a.png': s3:// is not read"),
    ],
)
def test_a_corrupt_manifest_is_one_line_exit_2_and_nothing_written(tmp_path, name, content, says):
    manifest = tmp_path / name
    manifest.write_text(content)
    root = tmp_path / "root"
    result = _pull(manifest, root)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"seg-client: error: {manifest}: ") and says in lines[0]
    assert not root.exists()


def test_unreachable_url_fails_that_image_with_a_clear_line(tmp_path, server):
    dead = closed_port_url("gone.jpg")
    manifest = _manifest(tmp_path, [{"url": dead}, {"url": server.url("d.jpg")}])
    root = tmp_path / "root"
    result = _pull(manifest, root, "--retries", "1")
    assert result.exit_code == 1
    assert "seg-client: failed: gone: cannot connect (" in result.stderr
    assert f"(gave up after 2 attempts) ({dead})" in result.stderr
    assert "1 downloaded, 0 already present, 1 failed" in result.stdout
    assert _csv(root) == ["image,label", "d.jpg,"]


def test_http_answers_retried_or_not(tmp_path, server):
    manifest = _manifest(
        tmp_path,
        [
            {"url": server.url("status/404/a.png"), "id": "missing"},
            {"url": server.url("status/403/a.png"), "id": "forbidden"},
            {"url": server.url("fail/a.png"), "id": "down"},
            {"url": server.url("fail-once/e.png?status=429&retry_after=0.3"), "id": "busy"},
            {"url": server.url("redirect/c.png"), "id": "moved"},
            {"url": server.url("notes.jpg")},
            {"url": server.url("drop/a.png"), "id": "dropped"},
        ],
    )
    root = tmp_path / "root"
    started = time.monotonic()
    result = _pull(manifest, root)
    assert result.exit_code == 1
    err = result.stderr
    assert "failed: missing: HTTP 404 Not Found (" in err
    assert "failed: forbidden: HTTP 403 Forbidden (" in err
    assert "failed: down: HTTP 503 Service Unavailable (gave up after 3 attempts)" in err
    assert "failed: notes: not a decodable image (" in err
    assert "failed: dropped: connection dropped (" in err
    stats = server.stats()
    assert stats["/status/404/a.png"] == stats["/status/403/a.png"] == 1
    assert stats["/fail/a.png"] == stats["/drop/a.png"] == 3
    assert stats["/fail-once/e.png"] == 2 and stats["/redirect/c.png"] == stats["/c.png"] == 1
    assert time.monotonic() - started >= 0.3  # the Retry-After was waited for
    assert _files(root / "DATA/pictures") == ["busy.png", "moved.png"]
    assert "2 downloaded, 0 already present, 5 failed" in result.stdout


def test_size_bound_and_timeout(tmp_path, server):
    manifest = _manifest(tmp_path, [{"url": server.url("a.png")}, {"url": server.url("slow/c.png?delay=3")}])
    result = _pull(manifest, tmp_path / "root", "--max-bytes", "100", "--timeout", "0.5", "--retries", "0")
    assert result.exit_code == 1
    assert "failed: a: over --max-bytes (" in result.stderr
    assert "failed: c: no answer within 0.5 s (--timeout)" in result.stderr
    assert not (tmp_path / "root/DATA/pictures").exists()


def test_dataset_keeps_manifest_order_and_exclude_leaves_images_out(tmp_path, server):
    rows = [{"url": server.url("slow/a.png?delay=0.4")}] + [
        {"url": server.url(n), "label": n[0]} for n in ("b.jpg", "c.png", "d.jpg")
    ]
    layout = DataLayout(tmp_path / "root")
    with Fetcher(FetchSettings(retries=0)) as fetcher:
        manifest = read_manifest(str(_manifest(tmp_path, rows)), fetcher.fetch_bytes)
        summary = pull_group("g", manifest, layout, fetcher, concurrency=4, exclude=lambda p: p == "c.png")
    assert (summary.downloaded, summary.present, summary.excluded, summary.listed) == (4, 0, 1, 3)
    assert _csv(layout.root) == ["image,label", "a.png,", "b.jpg,b", "d.jpg,d"]
    assert (layout.pictures / "c.png").is_file()  # left out of the group, still downloaded


def test_ctrl_c_stops_at_once_and_says_a_rerun_resumes(tmp_path, server):
    rows = [{"url": server.url(f"slow/a.png?delay=30&n={i}"), "id": f"s{i}"} for i in range(12)]
    manifest = _manifest(tmp_path, rows)
    args = ["pull", "--group", "g", "--manifest", str(manifest), "--data-root", str(tmp_path / "root")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.groups.cli", *args, "-j", "3"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while server.stats().get("/slow/a.png", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert time.monotonic() - asked < 5  # the requests in flight were not waited out
    assert "interrupted" in err and "a re-run of groups pull resumes" in err
    assert server.stats() == {"/slow/a.png": 3}  # the queued images were never asked for
    assert not (tmp_path / "root/DATA/datasets").exists()


def test_check_picture_suffix_and_refusals(served):
    png = (served / "a.png").read_bytes()
    assert check_picture(png, None, None).suffix == ".png"
    assert check_picture(png, None, ".jpeg").suffix == ".jpeg"  # the URL's suffix wins
    picture = check_picture(png, _sha(png), None, "image/jpeg")
    assert (picture.width, picture.height, picture.sha256) == (64, 48, _sha(png))
    with pytest.raises(FetchError, match="empty"):
        check_picture(b"", None, None)
    with pytest.raises(FetchError, match="sha256 differs"):
        check_picture(png, "0" * 64, None)
    with pytest.raises(FetchError, match="not a decodable image"):
        check_picture(png[: len(png) // 3], None, None)


@pytest.mark.parametrize(
    ("text", "value"), [("1048576", 1 << 20), ("512K", 512 << 10), ("256MiB", 256 << 20), ("1g", 1 << 30)]
)
def test_byte_sizes(text, value):
    assert ByteSize().convert(text, None, None) == value


def test_the_http_fixture_records_writes_and_answers_scripted_ones(server):
    """The parts of tests/fixtures/http_files.py meant for a metadata service, not used above."""
    import httpx

    with httpx.Client(base_url=server.url(), trust_env=False) as client:
        created = client.post("/records/g?status=202", json={"id": "a", "n": 1})
        assert (created.status_code, created.json()["body"]) == (202, {"id": "a", "n": 1})
        server.script("/records/g", status=409, body={"error": "exists"}, times=1)
        assert client.put("/records/g", json={"id": "a"}).status_code == 409
        assert client.put("/records/g", json={"id": "a"}).status_code == 200  # the script was used up
    seen = [(r["method"], r["path"], r["body"]) for r in server.requests()]
    assert seen == [
        ("POST", "/records/g", {"id": "a", "n": 1}),
        ("PUT", "/records/g", {"id": "a"}),
        ("PUT", "/records/g", {"id": "a"}),
    ]
    assert server.stats() == {"/records/g": 3}


def _meta(root: Path, image_id: str) -> dict:
    return json.loads((root / "DATA" / "meta" / f"{image_id}.json").read_text())


def test_an_id_of_another_group_with_other_content_fails_instead_of_overwriting(tmp_path, server, served):
    mine = _image(served / "src" / "img0.png", seed=30)
    theirs = _image(served / "other" / "img0.png", seed=31)
    root = tmp_path / "root"
    first = _pull(
        _manifest(tmp_path / "g1", [{"url": server.url("src/img0.png"), "label": "cat"}]), root, group="g1"
    )
    assert first.exit_code == 0, first.output
    assert _meta(root, "img0")["groups"] == ["g1"]
    server.reset()

    rows = [{"url": server.url("other/img0.png"), "label": "dog"}, {"url": server.url("d.jpg")}]
    clash = _pull(_manifest(tmp_path / "g2", rows), root, group="g2")
    assert clash.exit_code == 1
    said = (
        "seg-client: failed: img0: id 'img0' is already img0.png of group g1 (from "
        f"{server.url('src/img0.png')}, sha256 {_sha(mine)[:16]}…), and this row's picture differs; "
        "give this row another id, or pass --replace to take the picture over"
    )
    assert said in clash.stderr
    assert "1 downloaded, 0 already present, 1 failed" in clash.stdout
    assert server.stats() == {"/d.jpg": 1}  # not even fetched
    assert (root / "DATA/pictures/img0.png").read_bytes() == mine
    assert _meta(root, "img0")["label"] == "cat" and _meta(root, "img0")["groups"] == ["g1"]
    assert _csv(root, "g1") == ["image,label", "img0.png,cat"]
    assert _csv(root, "g2") == ["image,label", "d.jpg,"]
    failed = json.loads((root / "DATA/meta/groups/g2.failures.json").read_text())["failed"]
    assert failed["img0"]["reason"].startswith("id 'img0' is already img0.png of group g1")
    # a sha256 that differs from the recorded one is other content too, whatever the URL
    other_sha = [{"url": server.url("src/img0.png"), "sha256": _sha(theirs)}]
    assert (
        "is already img0.png of group g1"
        in _pull(_manifest(tmp_path / "g5", other_sha), root, group="g5").stderr
    )

    # the same content (the same URL, or the recorded sha256 from anywhere) joins the picture
    server.reset()
    same_url = _pull(
        _manifest(tmp_path / "g3", [{"url": server.url("src/img0.png"), "label": "lion"}]), root, group="g3"
    )
    same_sha = [{"url": server.url("elsewhere/img0.jpeg"), "sha256": _sha(mine), "label": "puma"}]
    by_sha = _pull(_manifest(tmp_path / "g4", same_sha), root, group="g4")
    assert same_url.exit_code == by_sha.exit_code == 0, same_url.output + by_sha.output
    assert "0 downloaded, 1 already present, 0 failed" in by_sha.stdout
    assert server.stats() == {}
    meta = _meta(root, "img0")
    assert meta["groups"] == ["g1", "g3", "g4"]
    assert (meta["label"], meta["url"]) == ("cat", server.url("src/img0.png"))  # the first group's meta
    assert _csv(root, "g3") == ["image,label", "img0.png,lion"]  # each group's label is in its CSV
    assert _csv(root, "g4") == ["image,label", "img0.png,puma"]
    # a damaged shared picture is fetched again, under the name the groups list
    (root / "DATA/pictures/img0.png").write_bytes(b"damaged")
    again = _pull(_manifest(tmp_path / "g4", same_sha), root, group="g4")
    assert again.exit_code == 1 and "failed: img0: HTTP 404" in again.stderr  # that URL serves nothing
    assert (
        _pull(_manifest(tmp_path / "g3", [{"url": server.url("src/img0.png")}]), root, group="g3").exit_code
        == 0
    )
    assert (root / "DATA/pictures/img0.png").read_bytes() == mine
    assert _meta(root, "img0")["groups"] == ["g1", "g3", "g4"]
    # ... but not when the URL now serves other bytes: those are not the other groups' picture
    _image(served / "src" / "img0.png", seed=34)
    (root / "DATA/pictures/img0.png").write_bytes(b"damaged")
    changed = _pull(_manifest(tmp_path / "g3", [{"url": server.url("src/img0.png")}]), root, group="g3")
    assert changed.exit_code == 1
    assert "is already img0.png of groups g1, g4 (from" in changed.stderr
    assert "this row's picture (as fetched now) differs" in changed.stderr
    assert (root / "DATA/pictures/img0.png").read_bytes() == b"damaged"  # a failed row changes nothing
    assert _meta(root, "img0")["sha256"] == _sha(mine)

    # --replace takes it over: the picture and its meta become g2's alone
    taken = _pull(_manifest(tmp_path / "g2", rows), root, "--replace", group="g2")
    assert taken.exit_code == 0, taken.output
    assert "1 downloaded, 1 already present, 0 failed" in taken.stdout
    assert (root / "DATA/pictures/img0.png").read_bytes() == theirs
    meta = _meta(root, "img0")
    assert (meta["groups"], meta["label"], meta["url"]) == (["g2"], "dog", server.url("other/img0.png"))
    assert not (root / "DATA/meta/groups/g2.failures.json").exists()


def test_a_repull_of_the_same_group_with_a_changed_url_still_refetches(tmp_path, server, served):
    first = _image(served / "v1" / "solo.png", seed=32)
    second = _image(served / "v2" / "solo.png", seed=33)
    root = tmp_path / "root"
    assert _pull(_manifest(tmp_path, [{"url": server.url("v1/solo.png")}]), root, group="mine").exit_code == 0
    assert (root / "DATA/pictures/solo.png").read_bytes() == first
    moved = _pull(_manifest(tmp_path, [{"url": server.url("v2/solo.png")}]), root, group="mine")
    assert moved.exit_code == 0, moved.output
    assert "1 downloaded, 0 already present" in moved.stdout
    assert (root / "DATA/pictures/solo.png").read_bytes() == second
    assert _meta(root, "solo")["groups"] == ["mine"]


def test_secrets_in_urls_are_never_shown_or_written(tmp_path, server):
    secret, token = "pw5ecret", "t0ken5ecret"
    host = server.url().removeprefix("http://").rstrip("/")
    rows = [
        {"url": f"http://user:{secret}@{host}/status/404/x.jpg?token={token}"},
        {"url": f"http://user:{secret}@{host}/a.png?token={token}&v=2", "id": "ok"},
    ]
    manifest = _manifest(tmp_path, rows)
    root = tmp_path / "root"
    result = _pull(manifest, root)
    assert result.exit_code == 1
    shown = f"http://***@{host}/status/404/x.jpg?token=***"
    assert f"seg-client: failed: x: HTTP 404 Not Found ({shown})" in result.stderr
    failures = (root / "DATA/meta/groups/g.failures.json").read_text()
    assert json.loads(failures)["failed"]["x"]["url"] == shown
    meta = (root / "DATA/meta/ok.json").read_text()
    assert json.loads(meta)["url"] == f"http://{host}/a.png?token={token}&v=2"  # the query says which image
    for text in (result.stdout, result.stderr, failures, meta):
        assert secret not in text
    for text in (result.stdout, result.stderr, failures):
        assert token not in text
    asked = {r["path"]: r for r in server.requests()}
    assert asked["/a.png"]["query"] == f"token={token}&v=2"  # the request has the URL as given
    assert (
        asked["/a.png"]["headers"]["Authorization"]
        == "Basic " + base64.b64encode(f"user:{secret}".encode()).decode()
    )
    again = _pull(manifest, root)  # the meta's URL, without the password, still matches the row
    assert "0 downloaded, 1 already present, 1 failed" in again.stdout

    missing = _pull(f"http://user:{secret}@{host}/lists/missing.json?token={token}", root)
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        f"seg-client: error: http://***@{host}/lists/missing.json?token=***: cannot fetch the manifest: "
        "HTTP 404 Not Found"
    )


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width × height (its one IDAT holds a single row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_check_picture_refuses_too_many_pixels_from_the_header_before_decoding(served, monkeypatch):
    png = (served / "a.png").read_bytes()  # 64x48: 3072 pixels
    assert check_picture(png, None, None, max_pixels=3072).width == 64

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr("clients.groups.download.decode_image", no_decoding)
    with pytest.raises(
        FetchError, match=r"^over --max-pixels \(the image is 100000x100000, 10000.0 megapixels"
    ):
        check_picture(_png_claiming(100_000, 100_000), None, None)  # the default: DEFAULT_MAX_PIXELS
    with pytest.raises(FetchError, match=r"the image is 64x48, 3072 pixels; the limit is 3071 pixels"):
        check_picture(png, None, None, max_pixels=3071)
    # a format whose header is not read: OpenCV decodes a PPM (at whatever size it claims); refused
    ppm = b"P6\n4 4\n255\n" + b"\x7f" * 48
    with pytest.raises(FetchError, match=r"^not a decodable image \(59 bytes.*header gives no size"):
        check_picture(ppm, None, None)
    assert FetchSettings().max_pixels == DEFAULT_MAX_PIXELS


def test_max_pixels_option_fails_a_larger_image(tmp_path, server):
    manifest = _manifest(tmp_path, [{"url": server.url("a.png")}, {"url": server.url("b.jpg")}])
    result = _pull(manifest, tmp_path / "root", "--max-pixels", "3000")
    assert result.exit_code == 1
    assert (
        "failed: a: over --max-pixels (the image is 64x48, 3072 pixels; the limit is 3000 pixels)"
        in result.stderr
    )
    assert "failed: b: over --max-pixels" in result.stderr
    assert not (tmp_path / "root/DATA/pictures").exists()
    assert _pull(manifest, tmp_path / "root", "--max-pixels", "3072").exit_code == 0


class _Trickler(socketserver.ThreadingTCPServer):
    """An HTTP server that sends a byte at a time, each well within any read timeout: its headers
    (``/headers/...``) or its body (``/body/...``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, body: bytes, pause_s: float):
        self.body, self.pause_s, self.hits = body, pause_s, []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _TrickleHandler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class _TrickleHandler(socketserver.BaseRequestHandler):
    server: _Trickler

    def handle(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            if not (data := self.request.recv(4096)):
                return
            request += data
        path = request.split(b" ")[1].decode()
        self.server.hits.append(path)
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(self.server.body)}\r\n\r\n"
        )
        slow, fast = (
            (head.encode(), self.server.body) if path.startswith("/headers") else (b"", head.encode())
        )
        with contextlib.suppress(OSError):  # the client hung up
            self.request.sendall(fast)
            for i in range(len(slow or self.server.body)):
                if self.server.stopping.wait(self.server.pause_s):
                    return
                self.request.sendall((slow or self.server.body)[i : i + 1])
            self.request.sendall(self.server.body if slow else b"")


@pytest.fixture
def trickler(served):
    server = _Trickler((served / "a.png").read_bytes(), pause_s=0.05)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_trickling_server_is_cut_off_at_the_deadline_and_retried(tmp_path, trickler):
    assert default_deadline(30) == 120 and default_deadline(0.5) == 40  # 4 × max(--timeout, 10 s)
    rows = [{"url": trickler.url("headers/h.png")}, {"url": trickler.url("body/b.png")}]
    started = time.monotonic()
    result = _pull(
        _manifest(tmp_path, rows), tmp_path / "root", "--timeout", "0.5", "--deadline", "1", "--retries", "1"
    )
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    for image in ("h", "b"):
        assert (
            f"failed: {image}: not complete within 1 s (--deadline) (gave up after 2 attempts)"
            in result.stderr
        )
    assert sorted(trickler.hits) == ["/body/b.png"] * 2 + ["/headers/h.png"] * 2
    assert 2 <= took < 6  # two attempts of a second each; a whole PNG trickled would take minutes
    assert not (tmp_path / "root/DATA/pictures").exists()
