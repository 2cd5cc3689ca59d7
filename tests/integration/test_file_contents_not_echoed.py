"""A file that is not an image is named with its size and kind, never with its first bytes: a
token saved as ``.jpg`` must not reach a terminal, a log or a failures file.

groups pull (a local manifest: the check is client-side) and seg-client infer --source (the
served model's decode refuses it, a real tritonserver) on a text file holding a secret.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from store.segment_store import SegmentStore
from tests.conftest import MODEL, run_cli

SECRET = "sk-live-4f9a8b7c6d5e"  # short enough to fit in any "first bytes" of a message
TOKEN_FILE = f"{SECRET}\n"  # 21 bytes of text


def _assert_secret_nowhere(texts: list[str], folder: Path) -> None:
    for text in texts:
        assert SECRET not in text and SECRET[:8] not in text, text
    for path in folder.rglob("*"):
        if path.is_file() and path.name != "token.jpg":
            assert SECRET.encode()[:8] not in path.read_bytes(), path


def _picture(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8))


def test_groups_pull_names_the_size_and_kind_of_a_non_image_not_its_bytes(tmp_path):
    source = tmp_path / "src"
    _picture(source / "good.png")
    (source / "token.jpg").write_text(TOKEN_FILE)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps([{"url": "src/good.png", "id": "good"}, {"url": "src/token.jpg", "id": "tok"}])
    )
    root = tmp_path / "root"
    proc = run_cli(
        "seg-client", "groups", "pull", "--group", "g", "--manifest", str(manifest), "--data-root", str(root),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    failures = root / "DATA" / "meta" / "groups" / "g.failures.json"
    reason = json.loads(failures.read_text())["failed"]["tok"]["reason"]
    assert reason.startswith(f"not a decodable image ({len(TOKEN_FILE)} bytes, text; JPEG, PNG"), reason
    assert f"failed: tok: {reason}" in proc.stderr
    _assert_secret_nowhere([proc.stdout, proc.stderr], root)


def test_infer_names_the_size_and_kind_of_a_non_image_not_its_bytes(triton, sample_images, tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    (source / "scene0.jpg").write_bytes((sample_images / "scene0.jpg").read_bytes())
    (source / "token.jpg").write_text(TOKEN_FILE)
    out = tmp_path / "out"
    proc = run_cli(
        "seg-client", "infer", "--source", str(source), "--model", MODEL, "--url", triton.grpc_url,
        "--out", str(out), check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "1 written" in proc.stdout and "Traceback" not in proc.stderr
    reasons = json.loads((out / "failures.json").read_text())
    reason = reasons[str(source / "token.jpg")]
    assert reason.startswith(f"not a decodable image ({len(TOKEN_FILE)} bytes, text; JPEG, PNG"), reason
    _assert_secret_nowhere([proc.stdout, proc.stderr], out)


def test_bench_of_a_group_whose_images_are_all_badlisted_says_so(triton, tmp_path):
    """The "no images" error of bench --group names the badlist, as infer's does."""
    root = tmp_path / "root"
    _picture(tmp_path / "src" / "a.png")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"url": "src/a.png", "id": "a"}]))
    with SegmentStore.open(f"sqlite:///{root / 'DATA' / 'segments.db'}") as store:
        store.push_badlist(["a"])
    run_cli(
        "seg-client",
        "groups",
        "pull",
        "--group",
        "test",
        "--manifest",
        str(manifest),
        "--data-root",
        str(root),
    )
    proc = run_cli(
        "seg-client", "bench", "--group", "test", "--data-root", str(root), "--model", MODEL,
        "--url", triton.grpc_url, "--out", str(tmp_path / "perf"), check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("seg-client: error: group 'test': its one image is badlisted ("), (
        proc.stderr
    )
