"""seg-train coco2yolo on generated COCO exports covering every case of the issue."""

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from annotations.coco import polygon_segmentation
from tests.conftest import run_cli
from tests.fixtures.synthetic import _uncompressed_rle, make_scene, write_coco_dataset
from training.coco2yolo import DatasetError, convert


def _disc(h, w, cx, cy, r):
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (cx, cy), r, 1, -1)
    return m


def _edge_case_export(root: Path) -> Path:
    """One hand-made CVAT export with every kind of annotation and every defect."""
    (root / "images" / "sub").mkdir(parents=True)
    (root / "annotations").mkdir()
    h, w = 120, 160
    for name in ["a.jpg", "sub/b.jpg", "background.jpg"]:
        cv2.imwrite(str(root / "images" / name), np.full((h, w, 3), 128, np.uint8))
    two_parts = _disc(h, w, 30, 30, 12) | _disc(h, w, 100, 80, 15)
    crowd, compressed = _disc(h, w, 80, 40, 20), _disc(h, w, 40, 90, 18)
    rle = mask_utils.encode(np.asfortranarray(compressed))
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 5,
            "segmentation": polygon_segmentation(_disc(h, w, 60, 60, 25)),
        },
        {"id": 2, "image_id": 1, "category_id": 7, "segmentation": polygon_segmentation(two_parts)},
        {"id": 3, "image_id": 2, "category_id": 7, "segmentation": _uncompressed_rle(crowd), "iscrowd": 1},
        {
            "id": 4,
            "image_id": 2,
            "category_id": 5,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
        },
        {"id": 5, "image_id": 2, "category_id": 5, "segmentation": [[10, 10, 20, 20]]},  # degenerate
        {"id": 6, "image_id": 42, "category_id": 5, "segmentation": [[1, 1, 9, 1, 9, 9]]},  # unknown image
        {"id": 7, "image_id": 4, "category_id": 5, "segmentation": [[1, 1, 9, 1, 9, 9]]},  # missing file
        {"id": 8, "image_id": 1, "category_id": 5, "segmentation": []},  # empty
    ]
    for a in anns:
        a.setdefault("iscrowd", 0)
        a.update(bbox=[0, 0, 1, 1], area=1.0)
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": w, "height": h},
            {"id": 2, "file_name": "sub/b.jpg", "width": w, "height": h},
            {"id": 3, "file_name": "background.jpg", "width": w, "height": h},
            {"id": 4, "file_name": "gone.jpg", "width": w, "height": h},
        ],
        "annotations": anns,
        "categories": [{"id": 5, "name": "circle"}, {"id": 7, "name": "blob"}],
    }
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    return root


def _rasterize(label_line: str, h: int, w: int) -> np.ndarray:
    """The YOLO polygon at image size, rasterised as annToMask rasterises polygons (same rule for
    boundary pixels, so the comparison measures geometry, not two rasterisers' conventions)."""
    values = (np.array(label_line.split()[1:], float).reshape(-1, 2) * [w, h]).reshape(-1).tolist()
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([values], h, w)))


def _training_target(label_line: str, h: int, w: int) -> np.ndarray:
    """The mask ultralytics trains on for the label: the polygon scaled to a 4× larger training image
    (as imgsz 640 scales a 160-wide image) and filled there with cv2.fillPoly, then downsampled 4×
    (its default mask_ratio), which brings it back to the source image's grid."""
    from ultralytics.data.utils import polygon2mask

    xy = np.array(label_line.split()[1:], float).reshape(-1, 2) * [4 * w, 4 * h]
    return polygon2mask((4 * h, 4 * w), [xy.reshape(-1)], downsample_ratio=4)


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


@pytest.fixture
def exports(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    write_coco_dataset(src / "cvat1", {"circle": 1, "rectangle": 2, "triangle": 3}, 12, rng)
    write_coco_dataset(src / "cvat2", {"triangle": 11, "circle": 4, "rectangle": 30}, 12, rng)
    _edge_case_export(src / "cvat3")
    return src


def test_merges_exports_unifies_categories_and_reports_skips(exports, tmp_path):
    dst = tmp_path / "yolo"
    proc = run_cli(
        "seg-train",
        "coco2yolo",
        "--src_dir",
        str(exports),
        "--dst_dir",
        str(dst),
        "--val-fraction",
        "0.25",
        "--seed",
        "3",
    )
    data = yaml.safe_load((dst / "data.yaml").read_text())
    assert data["names"] == {0: "circle", 1: "rectangle", 2: "triangle", 3: "blob"}
    assert (data["path"], data["train"], data["val"]) == (str(dst.resolve()), "images/train", "images/val")
    report = json.loads((dst / "conversion_report.json").read_text())
    reasons = {(s["dataset"], s["annotation_id"]): s["reason"] for s in report["skipped_annotations"]}
    assert reasons[("cvat3", 5)].startswith("degenerate polygon")
    assert reasons[("cvat3", 6)] == "unknown image id 42"
    assert reasons[("cvat3", 7)] == "missing image file"
    assert reasons[("cvat3", 8)] == "empty segmentation"
    assert all(ds != "cvat3" or aid in {5, 6, 7, 8} for ds, aid in reasons)
    assert report["skipped_images"] == [
        {"dataset": "cvat3", "image": "gone.jpg", "reason": "missing image file"}
    ]
    assert "unknown image id 42" in proc.stdout and "degenerate polygon" in proc.stdout
    assert "circle" in proc.stdout and "train img" in proc.stdout
    # a background image is kept with an empty label file; sub-folders of file_name are kept
    labels = {
        p.relative_to(dst / "labels").as_posix().split("/", 1)[1]: p for p in (dst / "labels").rglob("*.txt")
    }
    assert labels["cvat3/background.txt"].read_text() == ""
    assert "cvat3/sub/b.txt" in labels
    assert len(labels) == 12 + 12 + 3


def test_split_is_a_deterministic_partition(exports, tmp_path):
    def split(dst, seed):
        convert(exports, dst, val_fraction=0.3, seed=seed)
        return {
            p: {q.relative_to(dst / "images" / p).as_posix() for q in (dst / "images" / p).rglob("*.jpg")}
            for p in ("train", "val")
        }

    a, b, c = split(tmp_path / "a", 1), split(tmp_path / "b", 1), split(tmp_path / "c", 2)
    assert a == b and a != c
    assert not a["train"] & a["val"] and len(a["train"] | a["val"]) == 27
    assert len(a["val"]) == round(27 * 0.3)


def test_converted_polygons_match_the_source_masks(exports, tmp_path):
    dst = tmp_path / "yolo"
    convert(exports, dst)
    names = yaml.safe_load((dst / "data.yaml").read_text())["names"]
    checked, ious, targets = 0, [], []
    for ds in ("cvat1", "cvat2", "cvat3"):
        coco = COCO(str(exports / ds / "annotations" / "instances_default.json"))
        cat_names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        for img in coco.loadImgs(coco.getImgIds()):
            label = next(iter(dst.glob(f"labels/*/{ds}/{Path(img['file_name']).with_suffix('.txt')}")), None)
            if label is None:
                continue
            lines = [line for line in label.read_text().splitlines() if line]
            anns = [
                a
                for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
                if a["id"] not in {5, 8} or ds != "cvat3"
            ]
            assert len(lines) == len(anns)
            for line, ann in zip(lines, anns):
                assert names[int(line.split()[0])] == cat_names[ann["category_id"]]
                truth = coco.annToMask(ann)
                ious.append(_iou(_rasterize(line, img["height"], img["width"]), truth))
                parts = len(ann["segmentation"]) if isinstance(ann["segmentation"], list) else 1
                targets.append((_iou(_training_target(line, img["height"], img["width"]), truth), parts))
                checked += 1
    assert checked > 40
    assert min(ious) == 1.0, sorted(ious)[:5]  # edge-traced polygons: exact under pycocotools
    # what ultralytics trains on: exact for one part, joined parts add their seams
    assert all(iou == 1.0 for iou, parts in targets if parts == 1), sorted(targets)[:5]
    assert min(iou for iou, _ in targets) >= 0.98, sorted(targets)[:5]


def test_classes_file_fixes_the_order_and_drops_others(exports, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("triangle\ncircle\n")
    report = convert(exports, tmp_path / "yolo", classes_file=classes)
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == {
        0: "triangle",
        1: "circle",
    }
    assert any("'rectangle' is not in --classes" in s.reason for s in report.skipped)


def test_invalid_json_is_a_one_line_error_naming_the_file(exports, tmp_path):
    bad = exports / "cvat2" / "annotations" / "instances_default.json"
    bad.write_text('{"images": [')
    proc = run_cli(
        "seg-train", "coco2yolo", "--src-dir", str(exports), "--dst-dir", str(tmp_path / "y"), check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"seg-train: error: {bad}: invalid JSON")


def test_missing_annotations_folder_is_named(tmp_path):
    (tmp_path / "src" / "ds" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"ds: has images/ but no annotations/"):
        convert(tmp_path / "src", tmp_path / "dst")


def test_rerun_replaces_the_dataset(exports, tmp_path):
    dst = tmp_path / "yolo"
    convert(exports, dst)
    (dst / "labels" / "stale.txt").write_text("from an older run")
    convert(exports, dst)
    assert not (dst / "labels" / "stale.txt").exists() and (dst / "data.yaml").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".yolo.")]


def _coco2yolo(src, dst):
    return run_cli("seg-train", "coco2yolo", "--src-dir", str(src), "--dst-dir", str(dst), check=False)


def _refused(proc, *words):
    """Exit 2, one line on stderr (no traceback), holding ``words``."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("seg-train: error: ") and all(w in line for w in words), line


def test_a_folder_it_did_not_write_is_refused_untouched(exports, tmp_path):
    dst = tmp_path / "notes"
    dst.mkdir()
    (dst / "todo.txt").write_text("my notes")
    _refused(
        _coco2yolo(exports, dst), f"{dst}: not empty and not written by seg-train coco2yolo", "--dst-dir"
    )
    assert (dst / "todo.txt").read_text() == "my notes" and sorted(dst.iterdir()) == [dst / "todo.txt"]

    out = tmp_path / "yolo"  # a previous output with the user's file added to it
    convert(exports, out)
    (out / "notes.txt").write_text("mine")
    _refused(_coco2yolo(exports, out), "holds notes.txt", "did not write", "move it out")
    assert (out / "notes.txt").read_text() == "mine" and (out / "data.yaml").is_file()


def test_a_destination_overlapping_the_source_is_refused(exports, tmp_path):
    project = tmp_path / "p"  # the case: the exports and a script inside the destination
    project.mkdir()
    exports.rename(project / "exports")
    (project / "train.py").write_text("print('mine')")
    src = project / "exports"
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    _refused(_coco2yolo(src, project), f"--dst-dir {project} contains --src-dir {src}")
    _refused(_coco2yolo(src, src), f"--dst-dir {src} is the --src-dir")
    _refused(_coco2yolo(src, src / "yolo"), f"--dst-dir {src / 'yolo'} is inside --src-dir {src}")
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_dst_dir_dot_is_refused_cleanly(exports, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _refused(_coco2yolo(exports, "."), "--dst-dir . is or contains the current folder", "--dst-dir dataset")
    assert not any(work.iterdir()) and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    proc = _coco2yolo(exports, "dataset")  # what the message suggests works
    assert proc.returncode == 0, proc.stderr
    assert (work / "dataset" / "data.yaml").is_file()


def test_output_gets_the_users_umask(exports, tmp_path):
    old = os.umask(0o002)
    try:
        proc = _coco2yolo(exports, tmp_path / "yolo")
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    modes = {
        p: stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "yolo", tmp_path / "yolo" / "labels", tmp_path / "yolo" / "data.yaml"]
    }
    assert list(modes.values()) == [0o775, 0o775, 0o664], {str(p): oct(m) for p, m in modes.items()}


def test_incomplete_image_and_category_entries_are_skip_reasons(tmp_path):
    root = _edge_case_export(tmp_path / "src" / "cvat")
    ann_file = root / "annotations" / "instances_default.json"
    coco = json.loads(ann_file.read_text())
    del coco["images"][0]["width"]  # a.jpg: annotations 1, 2 and 8
    del coco["images"][2]["file_name"]  # background.jpg, no annotations
    coco["categories"][1].pop("name")  # "blob": annotations 2 and 3
    ann_file.write_text(json.dumps(coco))
    proc = run_cli(
        "seg-train", "coco2yolo", "--src-dir", str(tmp_path / "src"), "--dst-dir", str(tmp_path / "y")
    )
    assert "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "y" / "conversion_report.json").read_text())
    assert report["names"] == ["circle"]
    assert {(s["image"], s["reason"]) for s in report["skipped_images"]} >= {
        ("a.jpg", "image entry without width"),
        ("image id 3", "image entry without file_name"),
    }
    reasons = {s["annotation_id"]: s["reason"] for s in report["skipped_annotations"]}
    assert reasons[1] == reasons[2] == reasons[8] == "image entry without width"
    assert reasons[3] == "category id 7 has no name"
    assert "image entry without width" in proc.stdout and "category id 7 has no name" in proc.stdout
    assert report["images"]["train"] + report["images"]["val"] == 1  # sub/b.jpg


def test_an_image_listed_twice_says_where(tmp_path):
    root = _edge_case_export(tmp_path / "src" / "cvat")
    ann_file = root / "annotations" / "instances_default.json"
    coco = json.loads(ann_file.read_text())
    coco["images"].append({**coco["images"][0], "id": 99})
    ann_file.write_text(json.dumps(coco))
    with pytest.raises(
        DatasetError, match=rf"^{ann_file}: a.jpg has two image entries in this file; keep one$"
    ):
        convert(tmp_path / "src", tmp_path / "y")

    coco["images"].pop()
    ann_file.write_text(json.dumps(coco))
    other = root / "annotations" / "more.json"
    other.write_text(json.dumps({**coco, "annotations": []}))
    with pytest.raises(DatasetError, match=rf"a.jpg is listed in {ann_file} and {other}; merge them"):
        convert(tmp_path / "src", tmp_path / "y")
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize("shape", ["disc", "thin", "pixel"])
def test_mask_polygons_reproduce_the_mask_under_pycocotools(shape):
    h, w = 40, 50
    mask = _disc(h, w, 20, 20, 9) if shape == "disc" else np.zeros((h, w), np.uint8)
    if shape == "thin":
        mask[5:35, 10:12] = 1
    elif shape == "pixel":
        mask[3, 4] = 1
    polygons = polygon_segmentation(mask)
    back = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w)))
    assert _iou(back, mask) == 1.0


def test_scene_generator_masks_are_what_is_drawn():
    image, instances = make_scene(64, 80, np.random.default_rng(1))
    assert image.shape == (64, 80, 3) and instances
    for inst in instances:
        assert inst.mask.any()
