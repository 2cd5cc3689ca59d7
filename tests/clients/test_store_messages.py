"""What the store-reading commands print: names from the store escaped, and a group whose images
are all badlisted said so (not "lists no images" or "run `segments build` first").

Real commands (console scripts in a subprocess) on a real SQLite store and DATA layout; the
inferring commands fail on the group before they need a server, so no tritonserver runs here.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import free_port_url, run_cli

NAMES = ("a", "b", "c", "d", "e")


def _db(root: Path) -> str:
    return f"sqlite:///{root / 'DATA' / 'segments.db'}"


def test_status_escapes_control_characters_of_names_from_the_store(tmp_path):
    db = f"sqlite:///{tmp_path / 'segments.db'}"
    with SegmentStore.open(db) as store:
        segments = [
            NewSegment(0, "\x1b[31mred\x1b[0m", 0.9, (0, 0, 2, 2), "abc"),
            NewSegment(1, "two\nlines", 0.8, (1, 1, 3, 3), "abd"),
            NewSegment(2, "чайник", 0.7, (0, 1, 3, 3), "abe"),  # printable: shown as it is
        ]
        store.save_segmentation(ImageFacts("x.jpg", "a" * 64, 10, 4, 3), "m\x07odel", "v1", segments)
    proc = run_cli("seg-client", "segments", "status", "--db", db)
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[31mred\\x1b[0m" in proc.stdout and "two\\nlines" in proc.stdout
    assert "чайник" in proc.stdout and "m\\x07odel: 1 images segmented" in proc.stdout
    lines = proc.stdout.splitlines()
    assert len(lines) == 6, proc.stdout  # the store line, one model, the header, three classes
    assert not any(line.startswith("lines") for line in lines)


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))


def _pulled_group_all_badlisted(root: Path) -> None:
    """`groups pull` of five images the store's badlist names: the CSV lists none of them."""
    for i, name in enumerate(NAMES):
        _image(root / "src" / f"{name}.png", i)
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps([{"url": f"src/{n}.png", "id": n} for n in NAMES]))
    with SegmentStore.open(_db(root)) as store:
        store.push_badlist(NAMES, source="bad.txt")
    pull = run_cli(
        "seg-client", "groups", "pull", "--group", "test", "--manifest", str(manifest),
        "--data-root", str(root),
    )  # fmt: skip
    assert "0 images listed, 5 left out" in pull.stdout, pull.stdout


def _all_badlisted(proc, what: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("seg-client: error: group 'test': all 5 images are badlisted (")
    assert "segments badlist push" in lines[0] and lines[0].endswith(what)


def test_infer_and_segments_build_of_a_group_whose_images_are_all_badlisted_say_so(tmp_path):
    _pulled_group_all_badlisted(tmp_path)
    unreached = free_port_url()  # the group is refused before any server is asked
    for command in (("infer",), ("segments", "build")):
        proc = run_cli(
            "seg-client", *command, "--group", "test", "--data-root", str(tmp_path), "--model", "m",
            "--url", unreached, check=False,
        )  # fmt: skip
        _all_badlisted(proc, "nothing to run on")


def test_a_group_that_lists_nothing_for_another_reason_still_says_so(tmp_path):
    (tmp_path / "DATA" / "datasets").mkdir(parents=True)
    (tmp_path / "DATA" / "datasets" / "test.csv").write_text("image,label\n")
    proc = run_cli(
        "seg-client", "infer", "--group", "test", "--data-root", str(tmp_path), "--model", "m",
        "--url", free_port_url(), check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "seg-client: error: group 'test' lists no images"


def test_export_of_a_group_whose_images_are_all_badlisted_says_so(tmp_path):
    with SegmentStore.open(_db(tmp_path)) as store:
        for i, name in enumerate(NAMES):
            segment = NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")
            facts = ImageFacts(f"{name}.png", f"{i}" * 64, 10, 4, 3)
            store.save_segmentation(facts, "m", "v1", [segment], groups=["test"])
        store.push_badlist(NAMES)
    out = tmp_path / "x.json"
    proc = run_cli(
        "seg-client", "segments", "export", "--group", "test", "--format", "coco", "--out", str(out),
        "--data-root", str(tmp_path), check=False,
    )  # fmt: skip
    _all_badlisted(proc, "nothing to export")
    assert "segments build` first" not in proc.stderr and not out.exists()
