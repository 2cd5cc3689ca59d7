"""What a manifest fetched over HTTP may make ``groups pull`` read: http(s) images only, and
redirects to http(s) only. A real HTTP server on loopback (tests/fixtures/http_files.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clients.cli import main
from tests.fixtures.http_files import http_files

pytestmark = pytest.mark.integration


def _image(path: Path, seed: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    return path.read_bytes()


@pytest.fixture
def server(tmp_path):
    with http_files(tmp_path / "served") as s:
        yield s


def _pull(manifest: str, root: Path, *args: str):
    argv = ["groups", "pull", "--group", "g", "--manifest", manifest, "--data-root", str(root)]
    argv += ["--retries", "0"]
    return CliRunner().invoke(main, [*argv, *args], catch_exceptions=False)


def _pictures(root: Path) -> list[str]:
    folder = root / "DATA" / "pictures"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_remote_manifest_cannot_copy_local_files_unless_allowed(tmp_path, server):
    private = tmp_path / "home" / "private.png"
    secret = _image(private, seed=1)
    _image(server.root / "a.png", seed=2)
    rows = [
        {"url": "a.png"},
        {"url": private.as_uri(), "id": "stolen"},
        {"url": f"file://localhost{private}", "id": "stolen2"},
    ]
    (server.root / "m.json").write_text(json.dumps(rows))
    root = tmp_path / "root"

    result = _pull(server.url("m.json"), root)
    assert result.exit_code == 1, result.output
    refused = [line for line in result.stderr.splitlines() if "--allow-local-files" in line]
    assert len(refused) == 2, result.stderr  # one line per refused entry
    assert all("manifest fetched over HTTP" in line for line in refused)
    assert _pictures(root) == ["a.png"]
    assert not (root / "DATA/meta/stolen.json").exists()
    failures = json.loads((root / "DATA/meta/groups/g.failures.json").read_text())["failed"]
    assert sorted(failures) == ["stolen", "stolen2"]
    assert (root / "DATA/datasets/g.csv").read_text().splitlines() == ["image,label", "a.png,"]
    assert secret not in b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())

    allowed = _pull(server.url("m.json"), root, "--allow-local-files")
    assert allowed.exit_code == 0, allowed.output
    assert (root / "DATA/pictures/stolen.png").read_bytes() == secret
    assert not (root / "DATA/meta/groups/g.failures.json").exists()


def test_a_local_manifest_reads_local_files_as_before(tmp_path):
    picture = tmp_path / "imgs" / "near.png"
    data = _image(picture, seed=3)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"url": picture.as_uri()}, {"url": "imgs/near.png", "id": "again"}]))
    result = _pull(str(manifest), tmp_path / "root")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "root/DATA/pictures/near.png").read_bytes() == data


def test_redirects_are_followed_to_http_only(tmp_path, server):
    private = tmp_path / "home" / "private.png"
    _image(private, seed=4)
    _image(server.root / "b.png", seed=5)
    server.script("/to-file.png", status=302, headers={"Location": private.as_uri()})
    server.script("/to-http.png", status=302, headers={"Location": "/b.png"})
    (server.root / "m.json").write_text(json.dumps([{"url": "to-file.png"}, {"url": "to-http.png"}]))
    root = tmp_path / "root"
    result = _pull(server.url("m.json"), root)
    assert result.exit_code == 1, result.output
    assert "redirected to a file:// URL; only http(s) redirects are followed" in result.stderr
    assert _pictures(root) == ["to-http.png"]

    server.script("/moved.json", status=301, headers={"Location": (server.root / "m.json").as_uri()})
    manifest = _pull(server.url("moved.json"), tmp_path / "other")
    assert manifest.exit_code == 2
    assert manifest.stderr.strip().endswith(
        "cannot fetch the manifest: redirected to a file:// URL; only http(s) redirects are followed"
    )
    assert not (tmp_path / "other" / "DATA").exists()
