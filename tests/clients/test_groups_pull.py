"""``seg-client groups pull`` against a real HTTP server on loopback (tests/fixtures/http_files.py)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clients.group_download import Fetcher, FetchError, FetchSettings, check_picture
from clients.groups_cli import ByteSize
from clients.groups_pull import pull_group
from clients.image_sources import images_in_group
from clients.manifest import read_manifest
from store.layout import DataLayout
from tests.fixtures.http_files import REPO_ROOT, closed_port_url, http_files

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
    from clients.groups_cli import groups

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
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


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
        [sys.executable, "-m", "clients.groups_cli", *args, "-j", "3"],
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
