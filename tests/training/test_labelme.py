"""seg-train labelme: LabelMe JSON → class-index masks and colour masks."""

import base64
import json

import cv2
import numpy as np

from tests.conftest import run_cli


def _labelme(path, shapes, image_path=None, image_data=None, h=60, w=80):
    path.write_text(
        json.dumps(
            {
                "version": "5.4.1",
                "flags": {},
                "shapes": shapes,
                "imagePath": image_path,
                "imageData": image_data,
                "imageHeight": h,
                "imageWidth": w,
            }
        )
    )


def _shape(label, kind, points):
    return {"label": label, "shape_type": kind, "points": points, "group_id": None, "flags": {}}


def test_converts_shapes_to_index_and_colour_masks(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    cv2.imwrite(str(src / "road.jpg"), np.full((60, 80, 3), 100, np.uint8))
    _labelme(
        src / "road.json",
        [
            _shape("road", "rectangle", [[0, 30], [79, 59]]),
            _shape("car", "polygon", [[10, 35], [30, 35], [30, 50], [10, 50]]),  # on top of the road
            _shape("sign", "circle", [[60, 10], [60, 16]]),
            _shape("lane", "line", [[0, 0], [10, 10]]),  # not in colors.csv: skipped with a reason
            _shape("sign", "line", [[0, 0], [10, 10]]),  # no area: skipped with a reason
        ],
        image_path="road.jpg",
    )
    _, png = cv2.imencode(".png", np.full((60, 80, 3), 50, np.uint8))
    _labelme(
        src / "embedded.json",
        [_shape("car", "polygon", [[1, 1], [20, 1], [20, 20]])],
        image_data=base64.b64encode(png.tobytes()).decode(),
    )
    (src / "broken.json").write_text("{not json")
    colors = tmp_path / "colors.csv"
    colors.write_text("name,r,g,b\n_background_,0,0,0\ncar,255,0,0\nroad,128,128,128\nsign,0,0,255\n")

    proc = run_cli(
        "seg-train",
        "labelme",
        "--src_dir",
        str(src),
        "--dst_dir",
        str(dst),
        "--colors",
        str(colors),
        check=False,
    )
    assert proc.returncode == 1  # one file failed, the others were converted
    assert "2 images converted, 1 failed" in proc.stdout
    assert "'sign': shape_type 'line' has no area" in proc.stdout
    assert (
        "broken.json" in proc.stdout and "'lane'" in proc.stdout and "label not in --classes" in proc.stdout
    )

    names = (dst / "classes.txt").read_text().split()
    assert names == ["_background_", "car", "road", "sign"]
    index = cv2.imread(str(dst / "indexes" / "road.png"), cv2.IMREAD_UNCHANGED)
    assert index.dtype == np.uint8 and index.shape == (60, 80)
    assert index[5, 5] == 0 and index[55, 70] == names.index("road")
    assert index[40, 20] == names.index("car")  # later shapes cover earlier ones
    assert index[10, 60] == names.index("sign")
    colour = cv2.imread(str(dst / "indexes" / "road_color_mask.png"))
    assert tuple(colour[40, 20]) == (0, 0, 255)  # car red, as BGR
    assert tuple(colour[55, 70]) == (128, 128, 128)
    assert (dst / "images" / "road.jpg").exists() and (dst / "images" / "embedded.png").exists()
    embedded = cv2.imread(str(dst / "indexes" / "embedded.png"), cv2.IMREAD_UNCHANGED)
    assert embedded[5, 15] == names.index("car")


def test_labelme_ignore_label_maps_to_255(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.zeros((20, 20, 3), np.uint8))
    _labelme(
        src / "a.json",
        [_shape("blur", "rectangle", [[0, 0], [9, 9]]), _shape("cat", "rectangle", [[10, 10], [19, 19]])],
        image_path="a.png",
        h=20,
        w=20,
    )
    classes = tmp_path / "labels.txt"
    classes.write_text("__ignore__\n_background_\ncat\nblur\n")
    run_cli("seg-train", "labelme", "--src-dir", str(src), "--dst-dir", str(dst), "--classes", str(classes))
    index = cv2.imread(str(dst / "indexes" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert index[15, 15] == 1 and index[5, 5] == 2 and index[5, 15] == 0
    assert (dst / "classes.txt").read_text().split() == ["_background_", "cat", "blur"]


def test_ignore_label_anywhere_and_duplicate_names(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    cv2.imwrite(str(src / "a" / "x.png"), np.zeros((20, 20, 3), np.uint8))
    _labelme(
        src / "a" / "x.json",
        [
            _shape("__ignore__", "rectangle", [[0, 0], [9, 9]]),
            _shape("cat", "rectangle", [[10, 10], [19, 19]]),
        ],
        image_path="x.png",
        h=20,
        w=20,
    )
    run_cli("seg-train", "labelme", "--src-dir", str(src), "--dst-dir", str(dst))
    assert (dst / "classes.txt").read_text().split() == ["_background_", "cat"]
    index = cv2.imread(str(dst / "indexes" / "x.png"), cv2.IMREAD_UNCHANGED)
    assert index[5, 5] == 255 and index[15, 15] == 1

    (src / "b").mkdir()
    (src / "b" / "x.json").write_text((src / "a" / "x.json").read_text())
    proc = run_cli(
        "seg-train", "labelme", "--src-dir", str(src), "--dst-dir", str(tmp_path / "dst2"), check=False
    )
    assert proc.returncode == 2 and "share the name 'x'" in proc.stderr


def _one_image_source(src):
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), np.zeros((20, 20, 3), np.uint8))
    _labelme(
        src / "a.json", [_shape("cat", "rectangle", [[10, 10], [19, 19]])], image_path="a.png", h=20, w=20
    )


def _refused(proc, *words):
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("seg-train: error: ") and all(w in line for w in words), line


def test_labelme_never_writes_into_a_folder_it_did_not_write(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _one_image_source(src)
    dst.mkdir()
    (dst / "classes.txt").write_text("my own class list\n")
    labelme = ("seg-train", "labelme", "--src-dir", str(src), "--dst-dir")
    _refused(
        run_cli(*labelme, str(dst), check=False), f"{dst}: not empty and not written by seg-train labelme"
    )
    assert (dst / "classes.txt").read_text() == "my own class list\n" and len(list(dst.iterdir())) == 1
    _refused(run_cli(*labelme, str(src), check=False), f"--dst-dir {src} is the --src-dir")
    _refused(run_cli(*labelme, str(tmp_path), check=False), f"--dst-dir {tmp_path} contains --src-dir")
    assert sorted(p.name for p in src.iterdir()) == ["a.json", "a.png"]
    assert cv2.imread(str(src / "a.png")) is not None

    out = tmp_path / "out"  # a previous output is replaced whole: no stale files of the old run
    run_cli(*labelme, str(out))
    (src / "a.json").rename(src / "b.json")
    run_cli(*labelme, str(out))
    assert sorted(p.name for p in (out / "indexes").iterdir()) == ["b.png", "b_color_mask.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
