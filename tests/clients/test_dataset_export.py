"""Training sets from the segment store (segments export --format yolo|semantic): which images and
segments go in, labels and index masks that give the stored masks back, hard links, the manifest,
and a folder that is written whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from clients.segments import dataset_file
from clients.segments.dataset_file import DatasetOptions, export_dataset
from clients.segments.datasets import (
    NO_SEGMENTS,
    NOT_REVIEWED,
    canonical_sha256,
    class_names,
    flat_name,
    flat_names,
    index_mask,
    select,
    semantic_classes,
    split_of,
)
from clients.triton.client import ClientError
from store.records import Status, StoredImage, StoredSegment
from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli
from tests.helpers import review_images

W, H = 40, 30
GROUP = "g"


# --- the selection rules, on records built directly ---------------------------------------------


def _image(image_id: int, path: str | None = None) -> StoredImage:
    return StoredImage(image_id, path or f"cam/{image_id}.jpg", W, H, "0" * 64, 100, False)


def _seg(seg_id: int, image: StoredImage, status: Status, replaces: int | None = None, score=0.5):
    return StoredSegment(
        id=seg_id,
        image_id=image.id,
        image=image.path,
        width=W,
        height=H,
        model="yolo",
        model_version="1",
        class_id=0,
        class_name="cat",
        score=score,
        bbox=(0, 0, 1, 1),
        rle={"size": [H, W], "counts": ""},
        status=status,
        replaces=replaces,
    )


A, U, R = Status.APPROVED, Status.UNCHECKED, Status.REJECTED


def _ids(selection) -> dict[str, list[int]]:
    return {i.path: [s.id for s in selection.segments[i.id]] for i in selection.images}


def test_a_correction_takes_the_place_of_the_segment_it_replaces_and_rejected_ones_stay_out():
    im = _image(1)
    segments = [
        _seg(1, im, A),  # replaced by 3: out although approved
        _seg(2, im, R),
        _seg(3, im, A, replaces=1),
        _seg(4, im, U),  # replaced by 5 (itself replaced by 6): out although unchecked
        _seg(5, im, A, replaces=4),
        _seg(6, im, A, replaces=5, score=0.9),
    ]
    selection = select([im], segments)
    assert _ids(selection) == {"cam/1.jpg": [6, 3]}  # highest score first
    assert not selection.left_out


def test_only_fully_reviewed_images_go_in_unless_unchecked_are_included():
    done, half, fresh, bare, negative = (_image(i) for i in range(1, 6))
    segments = [
        _seg(1, done, A),
        _seg(2, done, R),
        _seg(3, half, A),
        _seg(4, half, U),
        _seg(5, fresh, U),
        _seg(6, negative, R),  # reviewed: nothing there
        _seg(7, negative, R),
    ]
    images = [done, half, fresh, bare, negative]
    selection = select(images, segments)
    assert _ids(selection) == {"cam/1.jpg": [1], "cam/5.jpg": []}  # a background image
    assert selection.left_out == {NOT_REVIEWED: 2, NO_SEGMENTS: 1}

    everything = select(images, segments, include_unchecked=True)
    assert _ids(everything) == {
        "cam/1.jpg": [1],
        "cam/2.jpg": [3, 4],
        "cam/3.jpg": [5],
        "cam/5.jpg": [],
    }
    assert everything.left_out == {NO_SEGMENTS: 1}


def test_an_unchecked_segment_a_correction_replaced_does_not_hold_the_image_back():
    im = _image(1)
    assert _ids(select([im], [_seg(1, im, U), _seg(2, im, A, replaces=1)])) == {"cam/1.jpg": [2]}


def test_names_are_flat_and_must_not_share_a_stem():
    assert flat_name("cam/day 1/a.b.jpg") == "cam__day 1__a.b.jpg"
    assert flat_name("/mnt/x/a.png") == "mnt__x__a.png"
    assert flat_names([_image(1, "a/b.jpg"), _image(2, "a__c.jpg")]) == {1: "a__b.jpg", 2: "a__c.jpg"}
    with pytest.raises(ValueError, match=r"a/b\.jpg and a/b\.png both become 'a__b'"):
        flat_names([_image(1, "a/b.jpg"), _image(2, "a/b.png")])
    with pytest.raises(ValueError, match="both become 'a__b'"):
        flat_names([_image(1, "a/b.jpg"), _image(2, "a__b.jpg")])


def test_the_split_is_by_path_stable_and_never_leaves_val_or_train_empty():
    paths = [f"cam/{i}.jpg" for i in range(200)]
    split = split_of(paths, 0.2)
    val = {p for p, s in split.items() if s == ("val",)}
    assert 20 < len(val) < 60 and all(s in {("val",), ("train",)} for s in split.values())
    grown = split_of([*paths, *(f"new/{i}.jpg" for i in range(50))], 0.2)
    assert all(grown[p] == split[p] for p in paths)  # an image never changes sides
    assert split_of(["only.jpg"], 0.2) == {"only.jpg": ("train", "val")}
    assert sorted(split_of(["a.jpg", "b.jpg"], 0.01).values()) == [("train",), ("val",)]
    assert sorted(split_of(["a.jpg", "b.jpg"], 0.99).values()) == [("train",), ("val",)]


def test_class_names_are_contiguous_and_must_agree():
    im = _image(1)

    def seg(i, class_id, name):
        return StoredSegment(**{**vars(_seg(i, im, A)), "class_id": class_id, "class_name": name})

    assert class_names([seg(1, 3, "dog"), seg(2, 1, "cat"), seg(3, 3, "dog")]) == [
        "class_0",
        "cat",
        "class_2",
        "dog",
    ]
    with pytest.raises(ValueError, match="class id 1 is named both 'cat' and 'lynx'"):
        class_names([seg(1, 1, "cat"), seg(2, 1, "lynx")])
    with pytest.raises(ValueError, match="class 'cat' has the ids 1 and 2"):
        class_names([seg(1, 1, "cat"), seg(2, 2, "cat")])


def test_index_masks_go_16_bit_past_255_and_index_255_is_refused():
    im = _image(1)
    mask = _blank()
    mask[2:5, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle = {"size": [H, W], "counts": rle["counts"].decode()}
    wide = StoredSegment(**{**vars(_seg(1, im, A)), "class_id": 300, "class_name": "x", "rle": rle})
    index = index_mask(im, [wide], num_classes=302)
    assert index.dtype == np.uint16 and np.array_equal(index, mask.astype(np.uint16) * 301)
    assert index_mask(im, [], num_classes=4).dtype == np.uint8
    ignored = StoredSegment(**{**vars(wide), "class_id": 254})
    with pytest.raises(ValueError, match="would be index 255, which seg-train semantic ignores"):
        semantic_classes(["c"] * 255, [ignored])
    assert len(semantic_classes(["c"] * 301, [wide])[0]) == 302


# --- through a real store ------------------------------------------------------------------------


def _blank() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def _masks() -> dict[str, np.ndarray]:
    """Hole-free masks: a box, two components, an L, a disc, a thin line on the image's edge."""
    box, two, ell, disc, edge = (_blank() for _ in range(5))
    box[3:9, 4:15] = 1
    two[1:4, 1:4] = 1
    two[20:28, 30:39] = 1
    ell[5:25, 5:9] = 1
    ell[21:25, 5:30] = 1
    cv2.circle(disc, (20, 15), 9, 1, -1)
    edge[:, W - 1] = 1
    return {"box": box, "two": two, "ell": ell, "disc": disc, "edge": edge}


def _new(mask: np.ndarray, class_id: int, name: str, score: float) -> NewSegment:
    rle = mask_utils.encode(np.asfortranarray(mask))
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    return NewSegment(class_id, name, score, (x, y, x + w, y + h), rle["counts"].decode())


def _picture(root: Path, path: str, seed: int) -> ImageFacts:
    file = root / "DATA" / "pictures" / path
    file.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert cv2.imwrite(str(file), pixels)
    data = file.read_bytes()
    return ImageFacts(path, hashlib.sha256(data).hexdigest(), len(data), W, H)


@pytest.fixture
def data_root(tmp_path) -> Path:
    """cam/a.png: box (cat), two (dog); cam/b.png: ell (dog), disc (cat, over the ell), edge (bird);
    cam/c.png: rejected (background); cam/d.png: unchecked (left out)."""
    root = tmp_path / "root"
    m = _masks()
    images = {
        "cam/a.png": [_new(m["box"], 0, "cat", 0.9), _new(m["two"], 1, "dog", 0.8)],
        "cam/b.png": [
            _new(m["ell"], 1, "dog", 0.5),
            _new(m["disc"], 0, "cat", 0.7),
            _new(m["edge"], 3, "bird", 0.6),
        ],
        "cam/c.png": [_new(m["box"], 0, "cat", 0.4)],
        "cam/d.png": [_new(m["disc"], 0, "cat", 0.4)],
    }
    with SegmentStore.open(f"sqlite:///{root}/DATA/segments.db") as store:
        for n, (path, segments) in enumerate(images.items()):
            store.save_segmentation(_picture(root, path, n), "yolo", "7", segments, groups=[GROUP])
        review_images(store, ["cam/a.png", "cam/b.png"], Status.APPROVED)
        review_images(store, ["cam/c.png"], Status.REJECTED)
    return root


def _export(root: Path, fmt: str, out: Path, **options) -> dataset_file.DatasetReport:
    return export_dataset(DatasetOptions(fmt=fmt, out=out, group=GROUP, data_root=root, **options))


def _label_polygons(label: Path) -> list[tuple[int, np.ndarray]]:
    """(class id, pixel vertices) per line."""
    found = []
    for line in label.read_text().splitlines():
        values = line.split()
        assert all(len(v.split(".")[1]) == 6 for v in values[1:])  # six decimals
        xy = np.array(values[1:], np.float64).reshape(-1, 2) * [W, H]
        found.append((int(values[0]), xy))
    return found


def _union(polygons: list[np.ndarray]) -> np.ndarray:
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polygons], H, W)
    return mask_utils.decode(mask_utils.merge(rles))


def test_yolo_labels_give_the_stored_masks_back(data_root, tmp_path):
    from ultralytics.data.utils import polygon2mask

    out = tmp_path / "yolo"
    report = _export(data_root, "yolo", out)
    assert report.line() == (  # b's path hashes below 0.2: val
        f"2 train + 1 val images (1 background), 5 segments, 6 label lines → {out.resolve()}; "
        f"1 images left out: 1 {NOT_REVIEWED}"
    )
    assert (out / "images" / "val" / "cam__b.png").is_file()
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "cat", 1: "dog", 2: "class_2", 3: "bird"},
    }
    labels = {p.stem: p for p in out.glob("labels/*/*.txt")}
    assert sorted(labels) == ["cam__a", "cam__b", "cam__c"]
    assert labels["cam__c"].read_text() == ""  # every segment rejected: a background image

    m = _masks()
    expected = {
        "cam__a": [(0, m["box"]), (1, m["two"])],
        "cam__b": [(0, m["disc"]), (3, m["edge"]), (1, m["ell"])],
    }
    for stem, wanted in expected.items():
        lines = _label_polygons(labels[stem])
        for class_id, mask in wanted:  # segments in score order, outlines largest first
            count = len(_masks_components(mask))
            mine, lines = lines[:count], lines[count:]
            assert {c for c, _ in mine} == {class_id}
            assert np.array_equal(_union([p for _, p in mine]), mask)  # pycocotools: exact
            # ultralytics' polygon2mask truncates the coordinates to integers and fills the closed
            # polygon with cv2.fillPoly: on the pixel corners the label holds (rounded back from
            # six decimals), a pixel is in when its top-left corner is in or on the polygon, so it
            # adds the pixels right of and below every outline: the half pixel by which every
            # polygon label of ultralytics' (coco2yolo's too) is rasterised wider
            filled = np.zeros((H, W), np.uint8)
            for _, p in mine:
                corners = np.round(p)
                assert np.abs(p - corners).max() < 1e-4
                filled |= polygon2mask((H, W), [corners.reshape(-1)], color=1, downsample_ratio=1)
            grown = mask.copy()
            grown[:, 1:] |= mask[:, :-1]
            grown[1:, :] |= grown[:-1, :]
            assert np.array_equal(filled, grown)
        assert not lines


def _masks_components(mask: np.ndarray) -> list[int]:
    count, _ = cv2.connectedComponents(mask, connectivity=8)
    return list(range(1, count))


def test_pictures_are_hard_links_and_the_manifest_lists_what_was_written(data_root, tmp_path):
    out = tmp_path / "yolo"
    _export(data_root, "yolo", out, val_fraction=0.5)
    manifest = json.loads((out / "manifest.json").read_text())
    pictures = data_root / "DATA" / "pictures"
    for entry in manifest["images"]:
        linked = out / "images" / entry["split"] / entry["file"]
        assert os.stat(linked).st_ino == os.stat(pictures / entry["path"]).st_ino
        assert hashlib.sha256(linked.read_bytes()).hexdigest() == entry["sha256"]
        assert (out / "labels" / entry["split"] / f"{Path(entry['file']).stem}.txt").is_file()
    assert [e["path"] for e in manifest["images"]] == ["cam/a.png", "cam/b.png", "cam/c.png"]

    with SegmentStore.open(f"sqlite:///{data_root}/DATA/segments.db") as store:
        approved = {s.id: s for s in store.segments(statuses=[Status.APPROVED])}
    assert [s["id"] for s in manifest["segments"]] == sorted(approved)
    first = manifest["segments"][0]
    stored = approved[first["id"]]
    assert first == {
        "id": stored.id,
        "image": stored.image,
        "class_id": stored.class_id,
        "class_name": stored.class_name,
        "status": "approved",
        "origin": "model",
        "revision": stored.revision,
        "reviewer": stored.reviewer,
        "reviewed_at": None if stored.reviewed_at is None else stored.reviewed_at.isoformat(),
        "replaces": None,
        "model": "yolo",
        "model_version": "7",
        "source_file": None,
    }
    assert manifest["segments_sha256"] == canonical_sha256(manifest["segments"])
    assert (manifest["format"], manifest["group"], manifest["model"]) == ("yolo", GROUP, "yolo")
    assert manifest["store"] == f"sqlite:///{data_root}/DATA/segments.db"
    assert (manifest["include_unchecked"], manifest["val_fraction"]) == (False, 0.5)
    assert manifest["created"].endswith("+00:00")


def test_pictures_are_copied_where_they_cannot_be_linked(data_root, tmp_path, monkeypatch):
    def cross_device(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    out = tmp_path / "yolo"
    report = _export(data_root, "yolo", out)
    assert report.copied == 3 and "3 pictures copied (not on the dataset's file system)" in report.line()
    copied = out / "images" / "train" / "cam__a.png"
    picture = data_root / "DATA" / "pictures" / "cam" / "a.png"
    assert copied.read_bytes() == picture.read_bytes() and os.stat(copied).st_ino != os.stat(picture).st_ino


def test_include_unchecked_adds_the_unreviewed_images(data_root, tmp_path):
    out = tmp_path / "yolo"
    report = _export(data_root, "yolo", out, include_unchecked=True)
    assert report.segments == 6 and not report.left_out
    assert {p.stem for p in out.glob("labels/*/*.txt")} == {"cam__a", "cam__b", "cam__c", "cam__d"}


def test_semantic_index_masks_are_exact_with_the_higher_score_on_top(data_root, tmp_path):
    out = tmp_path / "semantic"
    report = _export(data_root, "semantic", out)
    assert report.num_classes == 5 and "--num-classes 5" in report.next_step()
    assert (out / "colors.csv").read_text().splitlines() == [
        "name,r,g,b",
        "background,0,0,0",
        "cat,128,0,0",
        "dog,0,128,0",
        "class_2,128,128,0",
        "bird,0,0,128",
    ]
    m = _masks()
    want_a = _blank()
    want_a[m["two"] > 0] = 2
    want_a[m["box"] > 0] = 1
    want_b = _blank()
    want_b[m["ell"] > 0] = 2  # score 0.5: under the disc (0.7) and the edge (0.6)
    want_b[m["edge"] > 0] = 4
    want_b[m["disc"] > 0] = 1
    for stem, want in (("cam__a", want_a), ("cam__b", want_b), ("cam__c", _blank())):
        index = cv2.imread(str(out / "indexes" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert index.dtype == np.uint8 and np.array_equal(index, want), stem
        picture = data_root / "DATA" / "pictures" / "cam" / f"{stem[-1]}.png"
        assert os.stat(out / "images" / f"{stem}.png").st_ino == os.stat(picture).st_ino
    assert sorted(p.name for p in out.iterdir()) == ["colors.csv", "images", "indexes", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["val_fraction"] is None and {e["split"] for e in manifest["images"]} == {None}


def test_a_non_empty_folder_is_refused_and_an_empty_one_filled(data_root, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ClientError, match=r"--out .*mine is not empty \(nothing in it was changed\)"):
        _export(data_root, "yolo", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    _export(data_root, "yolo", out)
    assert (out / "data.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "root"]  # no staging left


def test_an_error_half_way_leaves_nothing_behind(data_root, tmp_path, monkeypatch):
    written = []

    def failing(path, image):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        cv2.imwrite(str(path), image)

    monkeypatch.setattr(dataset_file, "write_png", failing)
    with pytest.raises(ClientError, match=r"cannot write .*semantic: No space left on device"):
        _export(data_root, "semantic", tmp_path / "semantic")
    assert written and sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_a_picture_changed_since_it_was_segmented_is_left_out(data_root, tmp_path):
    (data_root / "DATA" / "pictures" / "cam" / "a.png").write_bytes(b"another picture")
    report = _export(data_root, "semantic", tmp_path / "semantic")
    assert report.images == {"images": 2} and report.left_out[dataset_file.CHANGED] == 1
    assert "picture changed since it was segmented" in report.line()


def test_nothing_reviewed_is_one_line_saying_what_to_do(tmp_path):
    root = tmp_path / "root"
    with SegmentStore.open(f"sqlite:///{root}/DATA/segments.db") as store:
        facts = _picture(root, "cam/a.png", 0)
        store.save_segmentation(facts, "yolo", "7", [_new(_masks()["box"], 0, "cat", 0.9)], groups=[GROUP])
    out = tmp_path / "yolo"
    with pytest.raises(ClientError, match="no reviewed image in group 'g': review their segments first"):
        _export(root, "yolo", out)
    with SegmentStore.open(f"sqlite:///{root}/DATA/segments.db") as store:
        review_images(store, ["cam/a.png"], Status.REJECTED)
    with pytest.raises(ClientError, match="every segment of the 1 images of group 'g' was rejected"):
        _export(root, "yolo", out)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_the_command_line(data_root, tmp_path):
    out = tmp_path / "yolo"
    args = ("seg-client", "segments", "export", "--group", GROUP, "--data-root", str(data_root))
    done = run_cli(*args, "--format", "yolo", "--out", str(out), "--val-fraction", "0.5")
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and "5 segments, 6 label lines" in lines[0] and "1 images left out" in lines[0]
    assert lines[1] == f"train: seg-train yolo --data {out.resolve() / 'data.yaml'}"

    again = run_cli(*args, "--format", "yolo", "--out", str(out), check=False)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "is not empty" in again.stderr

    for extra, message in [
        (["--format", "semantic", "--val-fraction", "0.3"], "seg-train semantic splits the images itself"),
        (["--format", "yolo", "--status", "approved"], "--status is not for --format yolo"),
        (["--format", "coco", "--include-unchecked"], "--include-unchecked is for --format yolo or semantic"),
        (["--format", "coco", "--out", str(tmp_path)], "is a folder; --format coco writes a file"),
    ]:
        refused = run_cli(*args, "--out", str(tmp_path / "x"), *extra, check=False)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root", "yolo"]
