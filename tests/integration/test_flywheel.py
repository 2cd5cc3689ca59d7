"""The loop in one test, against a real tritonserver and a real PostgreSQL: segment a group, export
CVAT XML, edit it as an annotator would (move a polygon, delete a shape, relabel one, add a polygon,
draw a mask with cvat-sdk's encoder), import it, export a YOLO dataset, train one epoch on it,
build the checkpoint into a repository and serve it. Every edit is found in the dataset, pixel for
pixel where it was drawn. And the import is safe while a `segments build --process-all` rewrites
the same images on the same PostgreSQL store."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from annotations.coco import rle_mask
from annotations.polygons import mask_polygons
from serving.tritonserver import TritonServer
from store.records import Origin, Status
from store.segment_store import SegmentStore
from tests.conftest import BIN, MODEL, run_cli
from tests.fixtures.annotator_edits import Edits, edit_like_an_annotator
from tests.helpers import group_data_root

GROUP = "test"
OUTCOMES = ("unchanged", "edited", "relabelled", "rejected", "added", "skipped")


@pytest.fixture
def data_root(tmp_path, sample_images) -> Path:
    """DATA/pictures with the sample images and DATA/datasets/test.txt listing them."""
    return group_data_root(tmp_path / "root", sample_images, GROUP)


class Steps:
    """Each step's wall time, printed at the end (the issue's note quotes them)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def run(self, name: str, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        proc = run_cli(*command, timeout=timeout, as_user=True)
        self.times[name] = time.perf_counter() - start
        return proc


def _segment_and_export(steps: Steps, triton, root: Path, db: str, out: Path) -> None:
    steps.run(
        "segments build", "seg-client", "segments", "build", "--group", GROUP, "--model", MODEL,
        "--url", triton.grpc_url, "--db", db, "--data-root", str(root),
    )  # fmt: skip
    steps.run(
        "export cvat", "seg-client", "segments", "export", "--format", "cvat", "--group", GROUP,
        "--out", str(out), "--db", db, "--data-root", str(root),
    )  # fmt: skip


def _label_masks(dataset: Path, image: str, width: int, height: int) -> list[tuple[int, np.ndarray]]:
    """Each line of ``image``'s YOLO label file, rasterised at the picture's size."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    [entry] = [e for e in manifest["images"] if e["path"] == image]
    split = entry["split"].split("+")[0]  # "train+val": a lone image is in both
    label = dataset / "labels" / split / (Path(entry["file"]).stem + ".txt")
    found = []
    for line in label.read_text().splitlines():
        class_id, *xy = line.split()
        points = np.array(xy, float).reshape(-1, 2) * [width, height]
        rle = mask_utils.merge(mask_utils.frPyObjects([points.ravel().tolist()], height, width))
        found.append((int(class_id), mask_utils.decode(rle).astype(bool)))
    return found


def _outline_masks(mask: np.ndarray) -> list[np.ndarray]:
    height, width = mask.shape
    return [
        mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist()], height, width))) > 0
        for p in mask_polygons(mask)
    ]


def _check_every_edit_is_in_the_dataset(dataset: Path, edits: Edits, store: SegmentStore) -> None:
    names = yaml.safe_load((dataset / "data.yaml").read_text())["names"]
    class_of = {name: int(i) for i, name in names.items()}
    [picture] = [i for i in store.images() if i.path == edits.image]
    lines = _label_masks(dataset, edits.image, picture.width, picture.height)
    for edit, (label, drawn) in edits.drawn.items():
        assert any(c == class_of[label] and np.array_equal(m, drawn) for c, m in lines), edit
    rows = {s.id: s for s in store.segments(include_badlisted=True)}
    # the relabelled segment as the annotator's polygons hold it (holes filled, specks dropped)
    [correction] = [s for s in rows.values() if s.replaces == edits.relabelled]
    assert correction.class_name == edits.relabelled_to
    for outline in _outline_masks(rle_mask(correction.rle) > 0):
        assert any(c == class_of[edits.relabelled_to] and np.array_equal(m, outline) for c, m in lines)
    # the label file holds exactly the image's listed segments: not the deleted one, nor the
    # originals of the moved and the relabelled ones
    manifest = json.loads((dataset / "manifest.json").read_text())
    expected = [
        (s["class_id"], outline.tobytes())
        for s in manifest["segments"]
        if s["image"] == edits.image
        for outline in _outline_masks(rle_mask(rows[s["id"]].rle) > 0)
    ]
    assert sorted(expected) == sorted((c, m.tobytes()) for c, m in lines)
    manifest = json.loads((dataset / "manifest.json").read_text())
    listed = {s["id"] for s in manifest["segments"]}
    assert edits.deleted not in listed and edits.moved not in listed and edits.relabelled not in listed
    corrections = [s for s in manifest["segments"] if s["replaces"] in (edits.moved, edits.relabelled)]
    assert len(corrections) == 2 and all(s["origin"] == "import" for s in corrections)


@pytest.mark.slow
def test_the_flywheel(triton, data_root, postgres_server, tmp_path):
    db = postgres_server.create_database()
    steps = Steps()
    export = tmp_path / "task.xml"
    _segment_and_export(steps, triton, data_root, db, export)
    edited, edits = edit_like_an_annotator(export.read_bytes())
    annotations = tmp_path / "annotations.xml"
    annotations.write_bytes(edited)

    proc = steps.run(
        "import", "seg-client", "segments", "import", "--format", "cvat", str(annotations),
        "--reviewer", "ann", "--json", "--db", db, "--data-root", str(data_root),
    )  # fmt: skip
    summary = json.loads(proc.stdout)
    counts = {k: summary[k] for k in OUTCOMES}
    with SegmentStore.open(db) as store:
        model_segments = [s for s in store.segments() if s.origin == Origin.MODEL]
    assert counts == {
        "unchanged": len(model_segments) - 3,
        "edited": 1,
        "relabelled": 1,
        "rejected": 1,
        "added": 2,
        "skipped": 0,
    }, [n for n in summary["notes"] if "another shape" not in n][:10]

    dataset = tmp_path / "dataset"
    steps.run(
        "export yolo", "seg-client", "segments", "export", "--format", "yolo", "--group", GROUP,
        "--out", str(dataset), "--db", db, "--data-root", str(data_root),
    )  # fmt: skip
    with SegmentStore.open(db) as store:
        _check_every_edit_is_in_the_dataset(dataset, edits, store)

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"model": "yolov8n-seg.yaml", "epochs": 1, "imgsz": 64, "batch": 4}))
    steps.run(
        "train 1 epoch", "seg-train", "yolo", "--config", str(config), "--data", str(dataset / "data.yaml"),
        "--device", "cpu", "workers=0", "plots=False", f"project={tmp_path / 'runs'}", "name=flywheel",
        timeout=900,
    )  # fmt: skip
    best = tmp_path / "runs" / "flywheel" / "weights" / "best.pt"
    assert best.is_file()
    repo = tmp_path / "repo"
    steps.run(
        "build-repo", "build-repo", "--model", "yolov8n-seg", "--weights", str(best), "--output", str(repo),
        "--name", "flywheel", "--quiet",
    )  # fmt: skip
    start = time.perf_counter()
    with TritonServer(repo, log_path=tmp_path / "server.log") as server:
        out = tmp_path / "served"
        run_cli(
            "seg-client", "infer", "--source", str(data_root / "DATA" / "pictures"), "--model", "flywheel",
            "--url", server.grpc_url, "--out", str(out), "--conf", "0.001",
        )  # fmt: skip
        answers = sorted(out.rglob("*.json"))
        assert answers and all(json.loads(a.read_text())["model"] == "flywheel" for a in answers[:1])
    steps.times["serve and infer"] = time.perf_counter() - start
    print("\nflywheel import summary:", json.dumps(counts))
    print("flywheel steps (s):", json.dumps({k: round(v, 1) for k, v in steps.times.items()}))


def test_an_import_while_a_build_rewrites_the_same_images(triton, data_root, postgres_server, tmp_path):
    """PostgreSQL, two processes: `segments build --process-all` replaces every unchecked segment of
    the group while the import applies the annotator's file. Whichever reaches an image first, the
    store ends with exactly what the annotator left, and nothing decided is lost."""
    db = postgres_server.create_database()
    export = tmp_path / "task.xml"
    _segment_and_export(Steps(), triton, data_root, db, export)
    edited, edits = edit_like_an_annotator(export.read_bytes())
    annotations = tmp_path / "annotations.xml"
    annotations.write_bytes(edited)
    build = subprocess.Popen(
        [str(BIN / "seg-client"), "segments", "build", "--group", GROUP, "--model", MODEL, "--url",
         triton.grpc_url, "--db", db, "--data-root", str(data_root), "--process-all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        imported = run_cli(
            "seg-client", "segments", "import", "--format", "cvat", str(annotations), "--json", "--db", db,
            "--data-root", str(data_root),
        )  # fmt: skip
        _, err = build.communicate(timeout=300)
    finally:
        if build.poll() is None:
            build.kill()
    assert build.returncode == 0, err
    assert json.loads(imported.stdout)["skipped"] == 0
    with SegmentStore.open(db) as store:
        current = [s for s in store.segments() if s.image == edits.image]
        approved = [rle_mask(s.rle) > 0 for s in current if s.status == Status.APPROVED]
        for edit, (_, drawn) in edits.drawn.items():
            assert any(np.array_equal(m, drawn) for m in approved), edit
        unchecked = [s for s in current if s.status == Status.UNCHECKED]
        assert not unchecked, "every segment of the imported image was decided"
        every = {s.id for s in store.segments(include_badlisted=True)}
        decided = [s for s in store.segments() if s.status != Status.UNCHECKED]
        assert store.decisions([s.id for s in decided]), "the decisions are kept"
        assert all(s.replaces is None or s.replaces in every for s in store.segments())
