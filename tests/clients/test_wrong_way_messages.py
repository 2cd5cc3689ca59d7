"""Messages that point the wrong way: what each command suggests must be what that command takes.

- ``meta build`` with a group that is not there suggests pulling or listing the group (it has no
  ``--source``), and says so before any server is asked; ``infer`` keeps suggesting ``--source``.
- ``groups pull``: a row whose id another group holds, with the same bytes but a wrong sha256 in
  the manifest, says the manifest's sha256 is wrong (not that the picture differs, not --replace).
- ``make demo`` prints the folder its overlay images are in, named without ``overlays/overlays``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clients.cli import main
from clients.meta.config_file import load_config
from clients.triton.client import ClientError
from store.layout import DataLayout
from tests.conftest import free_port_url
from tests.fixtures.http_files import closed_port_url, http_files

WRONG_SHA = "0123456789abcdef" * 4


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image(path: Path, seed: int, size=(40, 56)) -> bytes:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return path.read_bytes()


def _cli(*argv: str):
    return CliRunner().invoke(main, list(argv), catch_exceptions=False)


# meta build: a group that is not there


def _meta_root(tmp_path: Path) -> Path:
    """A data root whose configuration lists a model on a server that is not there."""
    root = tmp_path / "root"
    (root / "DATA" / "datasets").mkdir(parents=True)
    (root / "DATA" / "datasets" / "present.txt").write_text("a.jpg\n")
    host_port = closed_port_url().removeprefix("http://").split("/")[0]
    (root / "segstack.yaml").write_text(
        f"triton: {{url: '{host_port}', timeout: 2}}\nmodels:\n  - {{name: seg}}\n"
    )
    return root


def test_meta_build_with_a_missing_group_suggests_what_meta_build_takes_before_any_server(tmp_path):
    root = _meta_root(tmp_path)
    result = _cli("meta", "build", "--groups", "present", "sasha test", "--data-root", str(root))

    assert result.exit_code == 2, result.output
    datasets, pictures = root / "DATA" / "datasets", root / "DATA" / "pictures"
    assert result.stderr == (
        f"seg-client: error: group 'sasha test' not found: looked for {datasets / 'sasha test.txt'}, "
        f"{datasets / 'sasha test.csv'}, {datasets / 'sasha test'}; pass --data-root, pull the group "
        "(seg-client groups pull --group 'sasha test' --manifest URL|PATH), or list its images in "
        f"{datasets / 'sasha test.txt'}, one per line, relative to {pictures}\n"
    )
    assert "--source" not in result.output  # meta build has none


def test_build_meta_itself_does_not_suggest_source(tmp_path):
    """The library call (no server: the group is read first) says the same as the command."""
    from clients.meta.build import build_meta

    root = _meta_root(tmp_path)
    config = load_config(None, root)
    with pytest.raises(Exception, match="pull the group") as caught:
        build_meta("missing", config, client=None, infos=[])
    assert "--source" not in str(caught.value)


def test_infer_with_a_missing_group_still_suggests_source(tmp_path):
    result = _cli("infer", "--group", "missing", "--model", "m", "--data-root", str(tmp_path))
    assert result.exit_code != 0
    assert "group 'missing' not found" in result.stderr
    assert "pass --data-root, or --source DIR for a plain folder" in result.stderr


def test_bench_with_a_missing_group_suggests_images_before_any_server(tmp_path):
    result = _cli(
        "bench",
        "--group",
        "missing",
        "--model",
        "m",
        "--data-root",
        str(tmp_path),
        "--url",
        free_port_url(),
    )
    assert result.exit_code == 2
    assert "group 'missing' not found" in result.stderr
    assert "pass --data-root, or --images DIR for a plain folder" in result.stderr
    assert "--source" not in result.stderr


# groups pull: the same picture under a wrong sha256


@pytest.fixture
def served(tmp_path) -> Path:
    root = tmp_path / "served"
    _image(root / "img0.png", seed=1)
    (root / "copy").mkdir()
    shutil.copy(root / "img0.png", root / "copy" / "img0.png")
    _image(root / "other" / "img0.png", seed=2)
    return root


@pytest.fixture
def server(served):
    with http_files(served) as s:
        yield s


def _pull(root: Path, manifest_dir: Path, rows: list[dict], group: str, *args: str):
    manifest_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_dir / "manifest.json"
    manifest.write_text(json.dumps(rows))
    argv = ["groups", "pull", "--group", group, "--manifest", str(manifest), "--data-root", str(root)]
    return _cli(*argv, "--retries", "0", *args)


def _meta(root: Path) -> dict:
    return json.loads((root / "DATA" / "meta" / "img0.json").read_text())


@pytest.mark.integration
def test_the_same_picture_under_a_wrong_manifest_sha256_says_the_sha256_is_wrong(tmp_path, server, served):
    mine = (served / "img0.png").read_bytes()
    root = tmp_path / "root"
    first = _pull(root, tmp_path / "g1", [{"url": server.url("img0.png"), "label": "cat"}], "g1")
    assert first.exit_code == 0, first.output
    before = _meta(root)

    # the same bytes, from the same URL or another one (or a local file), with a wrong sha256
    for n, url in enumerate([server.url("img0.png"), server.url("copy/img0.png"), str(served / "img0.png")]):
        wrong = _pull(root, tmp_path / f"g2-{n}", [{"url": url, "id": "img0", "sha256": WRONG_SHA}], "g2")
        assert wrong.exit_code == 1, wrong.output
        assert (
            "seg-client: failed: img0: id 'img0' is already img0.png of group g1, and this row's file is "
            f"that picture byte for byte: the manifest's sha256 is wrong (it gives {WRONG_SHA}; the "
            f"file's sha256 is {_sha(mine)}); correct the row's sha256, or leave it out, and pull again"
        ) in wrong.stderr
        assert "--replace" not in wrong.stderr and "differs" not in wrong.stderr
        failed = json.loads((root / "DATA/meta/groups/g2.failures.json").read_text())["failed"]
        assert "the manifest's sha256 is wrong" in failed["img0"]["reason"]
        assert (root / "DATA/pictures/img0.png").read_bytes() == mine  # nothing changed
        assert _meta(root) == before
        assert (root / "DATA/datasets/g2.csv").read_text() == "image,label\n"


@pytest.mark.integration
def test_a_truly_different_picture_still_says_it_differs_and_replace_takes_it(tmp_path, server, served):
    theirs = (served / "other" / "img0.png").read_bytes()
    root = tmp_path / "root"
    assert _pull(root, tmp_path / "g1", [{"url": server.url("img0.png")}], "g1").exit_code == 0

    for sha in (_sha(theirs), WRONG_SHA):  # the manifest's own checksum right, or wrong too
        rows = [{"url": server.url("other/img0.png"), "sha256": sha}]
        clash = _pull(root, tmp_path / "g2", rows, "g2")
        assert clash.exit_code == 1, clash.output
        assert "id 'img0' is already img0.png of group g1 (from " in clash.stderr
        assert (
            "and this row's picture differs; give this row another id, or pass --replace to take the "
            "picture over"
        ) in clash.stderr
        assert "sha256 is wrong" not in clash.stderr
    taken = _pull(
        root,
        tmp_path / "g2",
        [{"url": server.url("other/img0.png"), "sha256": _sha(theirs)}],
        "g2",
        "--replace",
    )
    assert taken.exit_code == 0, taken.output
    assert (root / "DATA/pictures/img0.png").read_bytes() == theirs
    assert _meta(root)["groups"] == ["g2"]


# the demo's overlays folder


class _Writer:
    """Stands in for a model's writer: a record per image and, on request, its overlay."""

    task = "instance_segmentation"

    def __call__(self, client, model, item, data, base, overlay_path) -> int:
        base.parent.mkdir(parents=True, exist_ok=True)
        base.with_suffix(".json").write_text("{}")
        if overlay_path is not None:
            overlay_path.parent.mkdir(parents=True, exist_ok=True)
            overlay_path.write_bytes(data)
        return 0

    def done(self, model, item, path) -> bool:
        return False

    def failed_since(self, item, began) -> bool:
        return False


def test_the_demo_prints_the_folder_its_overlays_are_in(tmp_path, monkeypatch, capsys):
    """demo/run.py's own steps, with every command but infer's folder logic (run_images, which
    decides where overlays go) stood in for: the folder it prints holds the overlay images."""
    from clients.inference.run import run_images
    from clients.triton.image_sources import images_in_folder
    from demo import run as demo

    out = tmp_path / "demo"
    client = SimpleNamespace(url="stand-in", timeout_s=1.0, close=lambda: None, health_problem=lambda: None)
    model = SimpleNamespace(name=demo.MODEL, task="instance_segmentation")

    def fake_run(*args: str) -> str:
        if args[:2] == ("seg-client", "infer"):
            flags = dict(zip(args[2::2], args[3::2]))
            items = images_in_folder(Path(flags["--source"]))
            run_images(
                client, model, items, Path(flags["--out"]), overlays="--overlay" in args, writer=_Writer()
            )
        if args[:2] == ("seg-client", "evaluate"):
            return "box  mAP50 0.5  mAP50-95 0.4\nmask mAP50 0.5  mAP50-95 0.4\n"
        if args[:2] == ("seg-train", "coco2yolo"):
            _image(out / "dataset" / "images" / "val" / "a" / "one.png", seed=3)
        return ""

    def fake_exports(root: Path, n: int) -> None:
        (root / "cvat_project_a").mkdir(parents=True)

    scores = {"box_map50": 0.5, "box_map": 0.4, "mask_map50": 0.5, "mask_map": 0.4}
    monkeypatch.setattr(demo, "run", fake_run)
    monkeypatch.setattr(demo, "make_exports", fake_exports)
    monkeypatch.setattr(demo, "configure_offline_ultralytics", lambda: None)
    server = SimpleNamespace(send_signal=lambda sig: None, wait=lambda timeout: 0)
    monkeypatch.setattr(demo, "start_server", lambda repository, log: (server, "127.0.0.1:1"))
    monkeypatch.setattr(demo, "served_vs_predict_parity", lambda *a: "parity")
    monkeypatch.setattr(demo, "ultralytics_val", lambda *a: scores)
    monkeypatch.setattr(demo, "ultralytics_predict_cocoeval", lambda *a: scores)
    monkeypatch.setattr(sys, "argv", ["demo/run.py", "--out", str(out)])
    demo.main()

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  overlays ")]
    assert len(lines) == 1, lines
    printed = Path(lines[0].split()[1])
    assert [p.relative_to(printed).as_posix() for p in printed.rglob("*.jpg")] == ["a/one.jpg"]
    assert "overlays/overlays" not in printed.as_posix()
    assert printed == out / "results" / "val-conf0.25" / "overlays"
    # the records of that run, which the parity step reads, are beside it
    assert (printed.parent / "a" / "one.json").is_file()


def test_layout_default_is_unchanged_for_other_callers(tmp_path):
    from clients.triton.image_sources import images_in_group

    with pytest.raises(ClientError, match=r"pass --data-root, or --source DIR for a plain folder$"):
        images_in_group("nope", DataLayout(tmp_path))
