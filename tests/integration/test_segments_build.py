"""seg-client segments build / status / review / badlist / export / masks against a real
tritonserver and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sqlalchemy import create_engine, text

from tests.conftest import BIN, MODEL, run_cli
from tests.fixtures.postgres import free_port
from tests.helpers import group_data_root

GROUP = "test"


@pytest.fixture
def data_root(tmp_path, sample_images) -> Path:
    """DATA/pictures with the sample images and DATA/datasets/test.txt listing them."""
    return group_data_root(tmp_path / "root", sample_images, GROUP)


def _seg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("seg-client", *args, check=check)


def _build(triton, root: Path, db: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return _seg(
        "segments", "build", "--group", GROUP, "--model", MODEL, "--url", triton.grpc_url,
        "--db", db, "--data-root", str(root), *extra, check=check,
    )  # fmt: skip


def _rows(db: str, sql: str) -> list[tuple]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _count(db: str, table: str) -> int:
    return _rows(db, f"SELECT count(*) FROM {table}")[0][0]


def test_build_is_idempotent_and_matches_infer(triton, data_root, database_url, tmp_path):
    n = len(list((data_root / "DATA" / "pictures").rglob("*.*")))
    first = _build(triton, data_root, database_url)
    assert f"{n} segmented, 0 skipped" in first.stdout, first.stdout
    segments, images = _count(database_url, "segments"), _count(database_url, "images")
    assert images == n and segments > 0
    assert _count(database_url, "segmentations") == n

    second = _build(triton, data_root, database_url)
    assert f"0 segmented, {n} skipped" in second.stdout
    assert (_count(database_url, "segments"), _count(database_url, "images")) == (segments, images)

    # the same client code as infer: the stored segments are infer's detections
    out = tmp_path / "infer"
    _seg("infer", "--group", GROUP, "--model", MODEL, "--url", triton.grpc_url,
         "--data-root", str(data_root), "--out", str(out))  # fmt: skip
    from_infer = {}
    for record in out.rglob("*.json"):
        if record.name != "failures.json":
            data = json.loads(record.read_text())
            from_infer[data["image"]] = sorted(d["segmentation"]["counts"] for d in data["detections"])
    stored = {}
    for path, counts in _rows(
        database_url,
        "SELECT i.path, s.rle_counts FROM segments s JOIN images i ON i.id = s.image_id",
    ):
        stored.setdefault(path, []).append(counts)
    assert {k: sorted(v) for k, v in stored.items()} == {k: v for k, v in from_infer.items() if v}

    status = _seg("segments", "status", "--group", GROUP, "--db", database_url)
    assert f"{n} images, 0 badlisted" in status.stdout
    assert f"{MODEL}: {n} images segmented" in status.stdout
    assert "unchecked" in status.stdout


def test_review_then_process_all_keeps_approved_and_replaces_unchecked(triton, data_root, database_url):
    _build(triton, data_root, database_url)
    before = _count(database_url, "segments")
    scene = "scenes/scene4.jpg"
    approved_n = _rows(
        database_url,
        f"SELECT count(*) FROM segments s JOIN images i ON i.id = s.image_id WHERE i.path = '{scene}'",
    )[0][0]
    assert approved_n > 0
    review = _seg("segments", "review", "--approve", "scene4", "--db", database_url)
    assert f"{approved_n} segments marked approved" in review.stdout
    unknown = _seg("segments", "review", "--reject", "nope.jpg", "--db", database_url, check=False)
    assert unknown.returncode == 1 and "match no stored image" in unknown.stderr

    again = _build(triton, data_root, database_url, "--process-all")
    assert f"{before - approved_n} unchecked replaced" in again.stdout, again.stdout
    assert _count(database_url, "segments") == before  # same answers: nothing duplicated
    statuses = dict(_rows(database_url, "SELECT status, count(*) FROM segments GROUP BY status"))
    assert statuses == {"approved": approved_n, "unchecked": before - approved_n}


def test_mark_approved_and_classes(triton, data_root, database_url):
    result = _build(triton, data_root, database_url, "--mark-approved", "--classes", "0")
    assert "0 failed" in result.stdout
    rows = _rows(database_url, "SELECT DISTINCT status, class_id FROM segments")
    assert rows and all(status == "approved" and class_id == 0 for status, class_id in rows)
    bad = _build(triton, data_root, database_url, "--classes", "unicorn", check=False)
    assert bad.returncode == 2 and "has no class 'unicorn'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_badlist_exports_and_masks(triton, data_root, database_url, tmp_path):
    _build(triton, data_root, database_url)
    badlist = tmp_path / "badlist.txt"
    badlist.write_text("scene0.jpg\n# a comment\nnever-seen.png\n")
    pushed = _seg("segments", "badlist", "push", str(badlist), "--db", database_url)
    assert "1 stored images badlisted" in pushed.stdout
    assert "never-seen.png" in pushed.stderr
    n = len(list((data_root / "DATA" / "pictures").rglob("*.*")))
    status = _seg("segments", "status", "--db", database_url)
    assert f"{n} images, 1 badlisted" in status.stdout

    coco_path = tmp_path / "coco.json"
    _seg(
        "segments",
        "export",
        "--group",
        GROUP,
        "--format",
        "coco",
        "--out",
        str(coco_path),
        "--db",
        database_url,
    )
    gt = COCO(str(coco_path))
    names = {img["file_name"] for img in gt.dataset["images"]}
    assert "scenes/scene0.jpg" not in names and len(names) == n - 1
    annotations = gt.dataset["annotations"]
    assert annotations and all("score" in a and a["iscrowd"] == 0 for a in annotations)
    detections = gt.loadRes([dict(a) for a in annotations])
    evaluation = COCOeval(gt, detections, "segm")
    evaluation.params.maxDets = [1, 10, 1000]  # a random-weight model finds hundreds per image
    evaluation.evaluate()
    evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # all areas, at 1000 detections
    assert precision[precision > -1].mean() == pytest.approx(1.0)  # the export scored against itself

    cvat_path = tmp_path / "cvat.xml"
    _seg(
        "segments",
        "export",
        "--group",
        GROUP,
        "--format",
        "cvat",
        "--out",
        str(cvat_path),
        "--db",
        database_url,
    )
    root = ET.parse(cvat_path).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    labels = {label.findtext("name") for label in root.iter("label")}
    images = root.findall("image")
    assert len(images) == n - 1 and "scene0.jpg" not in {Path(i.get("name")).name for i in images}
    polygons = [p for i in images for p in i.findall("polygon")]
    assert polygons and {p.get("label") for p in polygons} <= labels
    for polygon in polygons:
        points = [tuple(map(float, xy.split(","))) for xy in polygon.get("points").split(";")]
        assert len(points) >= 3

    masks_dir = data_root / "MARKUP" / "masks"
    _seg("masks", "--group", GROUP, "--db", database_url, "--data-root", str(data_root))
    pngs = sorted(p.relative_to(masks_dir).as_posix() for p in masks_dir.rglob("*.png"))
    assert len(pngs) == n - 1 and "scenes/scene0.png" not in pngs
    sidecar = json.loads((masks_dir / "scenes" / "scene4.json").read_text())
    mask = cv2.imread(str(masks_dir / "scenes" / "scene4.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (sidecar["height"], sidecar["width"])
    assert set(np.unique(mask)) - {0} <= {s["value"] for s in sidecar["segments"]}
    first = coco_segment_of(gt, "scenes/scene4.jpg", sidecar["segments"][0]["segment_id"])
    assert ((mask == 1) <= (mask_utils.decode(first) > 0)).all()  # value 1 is the best segment's


def coco_segment_of(gt: COCO, file_name: str, segment_id: int) -> dict:
    annotation = next(a for a in gt.dataset["annotations"] if a["segment_id"] == segment_id)
    rle = dict(annotation["segmentation"])
    rle["counts"] = rle["counts"].encode()
    return rle


def test_two_builders_at_once_on_postgresql(triton, data_root, postgres_server):
    db = postgres_server.create_database()
    args = [
        str(BIN / "seg-client"), "segments", "build", "--group", GROUP, "--model", MODEL,
        "--url", triton.grpc_url, "--db", db, "--data-root", str(data_root), "-j", "2",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    n = len(list((data_root / "DATA" / "pictures").rglob("*.*")))
    assert _count(db, "images") == n and _count(db, "segmentations") == n
    duplicates = _rows(
        db,
        "SELECT image_id, model, rle_counts, count(*) FROM segments "
        "GROUP BY image_id, model, rle_counts HAVING count(*) > 1",
    )
    assert duplicates == []
    single = postgres_server.create_database()
    _build(triton, data_root, single)
    assert _count(db, "segments") == _count(single, "segments")


def test_a_database_that_does_not_answer_is_one_line(tmp_path):
    url = f"postgresql+psycopg://annotator:s3cret@127.0.0.1:{free_port()}/segments"
    result = _seg("segments", "status", "--db", url, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open the segment store" in lines[0]
    assert "s3cret" not in result.stderr and "***" in result.stderr


def test_pull_a_group_over_http_then_segment_it(triton, sample_images, database_url, tmp_path):
    """The seed's workflow end to end: load_group.py → segment_builder.py → push_badlist.py, with
    a flaky server (one 500 before the 200) and a truncated download."""
    from tests.fixtures.http_files import http_files

    served = tmp_path / "served"
    shutil.copytree(sample_images, served)
    names = sorted(p.name for p in served.iterdir())
    rows = [{"url": None, "id": Path(n).stem, "label": "scene"} for n in names]
    with http_files(served) as server:
        for row, name in zip(rows, names):
            row["url"] = server.url(name)
        rows[0]["url"] = server.url(f"fail-once/{names[0]}")
        rows[1]["url"] = server.url(f"truncate/{names[1]}")
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps(rows))
        root = tmp_path / "root"
        pull = ["groups", "pull", "--group", GROUP, "--manifest", str(manifest), "--data-root", str(root)]
        first = _seg(*pull, "--retries", "1", "--retry-wait", "0.01", "--db", database_url, check=False)
        assert first.returncode == 1 and f"{len(names) - 1} downloaded" in first.stdout, first.stdout
        assert not (root / "DATA" / "pictures" / names[1]).exists()  # the truncated one never lands
        assert server.stats()[f"/fail-once/{names[0]}"] == 2

        built = _build(triton, root, database_url)
        assert f"{len(names) - 1} segmented, 0 skipped" in built.stdout
        segments = _count(database_url, "segments")
        again = _build(triton, root, database_url)
        assert f"0 segmented, {len(names) - 1} skipped" in again.stdout
        assert _count(database_url, "segments") == segments  # a re-run adds no row

        badlist = tmp_path / "badlist.txt"
        badlist.write_text(f"{Path(names[2]).stem}\n")
        _seg("segments", "badlist", "push", str(badlist), "--db", database_url)
        rows[1]["url"] = server.url(names[1])  # the server mends: the re-run fetches what is missing
        manifest.write_text(json.dumps(rows))
        second = _seg(*pull, "--db", database_url)
        assert f"1 downloaded, {len(names) - 1} already present" in second.stdout, second.stdout
    listed = (root / "DATA" / "datasets" / f"{GROUP}.csv").read_text().splitlines()
    assert listed[0] == "image,label" and len(listed) == len(names)  # the badlisted image left out
    assert names[2] not in "\n".join(listed)
    finished = _build(triton, root, database_url)
    assert f"1 segmented, {len(names) - 2} skipped" in finished.stdout


def test_a_second_group_over_done_images_and_a_replaced_picture(triton, data_root, database_url):
    """Images done under one group join the next group that lists them; a picture replaced under
    the same name is segmented again, its old segments not read as the new one's."""
    _build(triton, data_root, database_url)
    datasets = data_root / "DATA" / "datasets"
    (datasets / "second.txt").write_text("scenes/scene4.jpg\nscenes/scene2.bmp\n")
    again = _seg(
        "segments", "build", "--group", "second", "--model", MODEL, "--url", triton.grpc_url,
        "--db", database_url, "--data-root", str(data_root),
    )  # fmt: skip
    assert "0 segmented, 2 skipped" in again.stdout
    status = _seg("segments", "status", "--group", "second", "--db", database_url)
    assert "2 images, 0 badlisted" in status.stdout

    picture = data_root / "DATA" / "pictures" / "scenes" / "scene4.jpg"
    image = cv2.imread(str(picture))
    cv2.imwrite(str(picture), cv2.resize(image[::-1], (image.shape[1] // 2, image.shape[0] // 2)))
    redone = _build(triton, data_root, database_url)
    assert "1 segmented" in redone.stdout, redone.stdout
    sizes = _rows(
        database_url,
        "SELECT DISTINCT s.mask_height, s.mask_width FROM segments s JOIN images i ON i.id = s.image_id "
        "WHERE i.path = 'scenes/scene4.jpg' AND s.image_sha256 = i.sha256",
    )
    assert sizes == [(image.shape[0] // 2, image.shape[1] // 2)]
