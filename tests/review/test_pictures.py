"""review.pictures on real picture files (written with OpenCV) and real COCO RLEs (pycocotools)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotations.polygons import polygons_mask
from review import pictures as pictures_module
from review.pictures import OUTLINE_POINTS, PictureError, Pictures, browser_type
from store.records import NewSegment, StoredImage, StoredSegment
from tests.helpers import segment_of_mask

WIDTH, HEIGHT = 640, 480


def _picture(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A smooth colour gradient: JPEG keeps it well, so a tint stands out from compression noise."""
    y, x = np.indices((height, width), dtype=np.float32)
    blue = 40 + 120 * x / width
    green = 60 + 100 * y / height
    red = np.full_like(x, 90)
    return np.stack([blue, green, red], axis=-1).astype(np.uint8)


def _store(pictures: Path, name: str, pixels: np.ndarray, image_id: int = 1) -> StoredImage:
    path = pictures / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    data = path.read_bytes()
    height, width = pixels.shape[:2]
    return StoredImage(image_id, name, width, height, hashlib.sha256(data).hexdigest(), len(data), False)


def _segment(image: StoredImage, mask: np.ndarray, segment_id: int = 1, class_id: int = 0) -> StoredSegment:
    return segment_of_mask(segment_id, mask, class_id, image_id=image.id, image=image.path, model="m")


def _box_mask(x1: int, y1: int, x2: int, y2: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def _disc_mask(cx: int, cy: int, r: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    pictures = tmp_path / "DATA" / "pictures"
    pictures.mkdir(parents=True)
    return pictures, tmp_path / "cache"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pictures decoded (every decoding goes through segops' decode_image)."""
    calls: list[int] = []
    real = pictures_module.decode_image

    def counting(data: bytes) -> np.ndarray:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(pictures_module, "decode_image", counting)
    return calls


def _read(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert pixels is not None, path
    return pixels


# --- crops ---------------------------------------------------------------------------------------


def test_crop_is_the_box_with_its_margin_resized_to_the_crop_size(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a/b.jpg", _picture())
    # 200 x 100 box, margin 50 x 25 each side: a 300 x 150 window, its longer side made 224
    segment = _segment(image, _box_mask(200, 200, 400, 300))
    path = pictures.crop(segment, image)
    assert path.parent == roots[1] / image.sha256[:2] / image.sha256
    assert path.name.startswith("1-") and path.suffix == ".jpg"
    assert _read(path).shape == (112, 224, 3)


def test_small_box_gets_16_px_margins_and_at_most_4x(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segment = _segment(image, _box_mask(300, 200, 310, 210))  # 10 px + 2 * 16 = 42 px: 4× is 168
    assert _read(pictures.crop(segment, image)).shape == (168, 168, 3)


def test_crop_window_is_clipped_to_the_picture(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    # 100 x 100 box at the top left corner: its window is 125 x 125 once clipped, square
    segment = _segment(image, _box_mask(0, 0, 100, 100))
    assert _read(pictures.crop(segment, image)).shape == (224, 224, 3)
    # a box the size of the picture: the crop keeps the picture's 4:3
    whole = _segment(image, _box_mask(0, 0, WIDTH, HEIGHT), segment_id=2)
    assert _read(pictures.crop(whole, image)).shape == (168, 224, 3)


def test_mask_is_drawn_over_the_picture(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    original = _picture()
    image = _store(roots[0], "a.jpg", original)
    # 224 x 224 box with 56 px margins: the window (112..448, 112..448) is 336 px, made 224
    mask = _box_mask(168, 168, 392, 392)
    crop = _read(pictures.crop(_segment(image, mask), image)).astype(np.float32)
    expected = cv2.resize(original[112:448, 112:448], (224, 224), interpolation=cv2.INTER_AREA)
    difference = np.abs(crop - expected.astype(np.float32)).sum(axis=-1)
    # the box is crop pixels 37..261 → 37..186 of 224; look 6 px away from its outline
    assert difference[45:180, 45:180].mean() > 40  # tinted
    assert difference[:30, :].mean() < 8  # untouched (JPEG noise only)
    assert difference[195:, :].mean() < 8
    ring = np.zeros((224, 224), bool)
    ring[36:39, 36:188] = True  # the outline along the box's top edge
    assert difference[ring].mean() > difference[45:180, 45:180].mean()


def test_crop_is_cut_once(roots: tuple[Path, Path], decodes: list[int]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segment = _segment(image, _disc_mask(320, 240, 60))
    path = pictures.crop(segment, image)
    mtime = path.stat().st_mtime_ns
    assert pictures.crop(segment, image) == path
    assert Pictures(*roots).crop(segment, image) == path  # another instance: the same cache
    assert len(decodes) == 1
    assert path.stat().st_mtime_ns == mtime
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    (roots[0] / "a.jpg").unlink()
    assert pictures.crop(segment, image) == path  # cut already: the picture is not opened again


def test_changed_segment_gets_a_new_crop(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segment = _segment(image, _disc_mask(320, 240, 60))
    moved = _segment(image, _disc_mask(330, 240, 60))
    relabelled = _segment(image, _disc_mask(320, 240, 60), class_id=3)
    paths = {pictures.crop(s, image) for s in (segment, moved, relabelled)}
    assert len(paths) == 3 and all(p.exists() for p in paths)
    stored = NewSegment(0, "class0", 0.9, segment.bbox, segment.rle["counts"]).fingerprint
    assert pictures.crop(segment, image).name == f"1-{stored[:12]}.jpg"  # the store's fingerprint


def test_cut_crops_decodes_the_picture_once(roots: tuple[Path, Path], decodes: list[int]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segments = [_segment(image, _disc_mask(40 + 60 * i, 100 + 25 * i, 20 + 3 * i), i) for i in range(10)]
    paths = pictures.cut_crops(image, segments)
    assert sorted(paths) == list(range(10)) and len(decodes) == 1
    assert all(_read(p).shape[2] == 3 for p in paths.values())
    assert pictures.cut_crops(image, segments) == paths and len(decodes) == 1
    assert pictures.crop(segments[3], image) == paths[3] and len(decodes) == 1
    extra = _segment(image, _disc_mask(500, 300, 30), 10)
    assert pictures.cut_crops(image, [*segments, extra])[10].exists() and len(decodes) == 2


def test_threads_cutting_one_picture_decode_it_once(roots: tuple[Path, Path], decodes: list[int]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segments = [_segment(image, _disc_mask(60 + 50 * i, 240, 25), i) for i in range(8)]
    results: list[dict[int, Path]] = []
    threads = [
        threading.Thread(target=lambda: results.append(pictures.cut_crops(image, segments))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and all(r == results[0] for r in results)
    assert len(decodes) == 1
    assert all(_read(p) is not None for p in results[0].values())


def test_segment_of_another_image_is_refused(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    other = _store(roots[0], "b.jpg", _picture(), image_id=2)
    with pytest.raises(ValueError, match="of image 2"):
        pictures.crop(_segment(other, _disc_mask(100, 100, 20)), image)


# --- which files are refused ---------------------------------------------------------------------


def _named(image: StoredImage, path: str) -> StoredImage:
    return StoredImage(image.id, path, image.width, image.height, image.sha256, image.size, False)


def test_paths_out_of_the_pictures_folder_are_refused(roots: tuple[Path, Path], tmp_path: Path) -> None:
    pictures = Pictures(*roots)
    outside = _store(tmp_path / "DATA", "x.jpg", _picture())  # DATA/x.jpg: beside the pictures
    (roots[0] / "link.jpg").symlink_to(tmp_path / "DATA" / "x.jpg")
    (roots[0] / "sub").mkdir()
    (roots[0] / "sub" / "up").symlink_to(tmp_path / "DATA")
    for path in (
        "../x.jpg",
        str(tmp_path / "DATA" / "x.jpg"),
        "link.jpg",
        "sub/up/x.jpg",
        "a/../../x.jpg",
        "",
    ):
        image = _named(outside, path)
        with pytest.raises(PictureError):
            pictures.file(image)
        with pytest.raises(PictureError):
            pictures.crop(_segment(image, _disc_mask(100, 100, 20)), image)
        with pytest.raises(PictureError):
            pictures.view(image)


def test_symlink_inside_the_pictures_folder_is_followed(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "real/a.jpg", _picture())
    (roots[0] / "alias.jpg").symlink_to(roots[0] / "real" / "a.jpg")
    assert pictures.file(_named(image, "alias.jpg")) == (roots[0] / "real" / "a.jpg").resolve()


def test_missing_picture_is_refused(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    (roots[0] / "a.jpg").unlink()
    with pytest.raises(PictureError, match="missing"):
        pictures.file(image)
    with pytest.raises(PictureError, match="missing"):
        pictures.crop(_segment(image, _disc_mask(100, 100, 20)), image)
    (roots[0] / "a.jpg").mkdir()
    with pytest.raises(PictureError, match="not a file"):
        pictures.file(image)


def test_changed_picture_is_refused(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segment = _segment(image, _disc_mask(100, 100, 20))
    path = roots[0] / "a.jpg"
    data = path.read_bytes()
    path.write_bytes(data + b"\0")
    with pytest.raises(PictureError, match="changed"):
        pictures.file(image)
    with pytest.raises(PictureError, match="changed"):
        pictures.crop(segment, image)
    path.write_bytes(data[:-3] + b"\0\0\0")  # the same size, other bytes
    with pytest.raises(PictureError, match="changed"):
        pictures.crop(segment, image)


def test_unreadable_picture_is_refused(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    path = roots[0] / "a.jpg"
    path.write_bytes(b"<html>not a picture</html>")
    data = path.read_bytes()
    image = StoredImage(1, "a.jpg", WIDTH, HEIGHT, hashlib.sha256(data).hexdigest(), len(data), False)
    with pytest.raises(PictureError, match="not a decodable image"):
        pictures.crop(_segment(image, _disc_mask(100, 100, 20)), image)


# --- outlines ------------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / (a | b).sum())


def _star_mask() -> np.ndarray:
    """A ragged star: hundreds of pixel-corner turns, more than the outline budget."""
    angles = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    radii = np.where(np.arange(120) % 2 == 0, 180, 120)
    points = np.stack([320 + radii * np.cos(angles), 240 + radii * np.sin(angles)], axis=1)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(mask, [np.rint(points).astype(np.int32)], 1)
    return mask


@pytest.mark.parametrize("mask", [_disc_mask(320, 240, 100), _star_mask(), _box_mask(10, 20, 300, 200)])
def test_outlines_rasterise_back_to_the_mask(roots: tuple[Path, Path], mask: np.ndarray) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    outlines = pictures.outlines(_segment(image, mask))
    assert outlines and all(isinstance(v, float) for v in outlines[0])
    assert sum(len(p) for p in outlines) // 2 <= OUTLINE_POINTS
    assert _iou(polygons_mask(outlines, HEIGHT, WIDTH), mask) > 0.9


def test_outlines_of_a_mask_in_pieces(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    mask = _disc_mask(150, 150, 60) | _disc_mask(450, 300, 80)
    outlines = pictures.outlines(_segment(image, mask))
    assert len(outlines) == 2
    assert _iou(polygons_mask(outlines, HEIGHT, WIDTH), mask) > 0.9


def test_outlines_are_cached_by_segment_and_fingerprint(
    roots: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = pictures_module.mask_polygons

    def counting(mask: np.ndarray, **options: object) -> list[np.ndarray]:
        calls.append(1)
        return real(mask, **options)

    monkeypatch.setattr(pictures_module, "mask_polygons", counting)
    monkeypatch.setattr(pictures_module, "OUTLINE_CACHE_SIZE", 2)
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    segment = _segment(image, _disc_mask(320, 240, 50))
    first = pictures.outlines(segment)
    first[0].clear()  # the caller's copy: the cache keeps its own
    assert pictures.outlines(segment) == pictures.outlines(segment) != first
    assert len(calls) == 1
    pictures.outlines(_segment(image, _disc_mask(300, 240, 50)))  # the same id, another mask
    assert len(calls) == 2
    pictures.outlines(_segment(image, _disc_mask(300, 240, 50), segment_id=2))
    pictures.outlines(segment)  # pushed out by the two others
    assert len(calls) == 4


# --- views ---------------------------------------------------------------------------------------


def test_view_of_a_jpeg_or_png_is_the_file_itself(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    jpeg = _store(roots[0], "a.jpg", _picture())
    png = _store(roots[0], "b.png", _picture(), image_id=2)
    assert pictures.view(jpeg) == ((roots[0] / "a.jpg").resolve(), "image/jpeg")
    assert pictures.view(png) == ((roots[0] / "b.png").resolve(), "image/png")
    assert pictures.view(jpeg, max_side=WIDTH) == ((roots[0] / "a.jpg").resolve(), "image/jpeg")
    assert not roots[1].exists()  # nothing cut


def test_view_of_a_bmp_is_a_jpeg_rendition(roots: tuple[Path, Path], decodes: list[int]) -> None:
    pictures = Pictures(*roots)
    original = _picture()
    image = _store(roots[0], "a.bmp", original)
    path, media_type = pictures.view(image)
    assert media_type == "image/jpeg"
    assert path == roots[1] / image.sha256[:2] / image.sha256 / "view.jpg"
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    rendition = _read(path)
    assert rendition.shape == original.shape
    assert np.abs(rendition.astype(np.int16) - original).mean() < 3
    assert pictures.view(image) == (path, "image/jpeg") and len(decodes) == 1


def test_view_of_a_16_bit_png_is_a_jpeg_rendition(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    original = _picture().astype(np.uint16) * 257
    image = _store(roots[0], "deep.png", original)
    path, media_type = pictures.view(image)
    assert media_type == "image/jpeg" and path.name == "view.jpg"
    assert np.abs(_read(path).astype(np.int16) - _picture()).mean() < 3


def test_downscaled_view(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    image = _store(roots[0], "a.jpg", _picture())
    path, media_type = pictures.view(image, max_side=320)
    assert media_type == "image/jpeg" and path.name == "view-320.jpg"
    assert _read(path).shape == (240, 320, 3)
    with pytest.raises(ValueError):
        pictures.view(image, max_side=0)


def test_view_looks_at_the_content_not_the_name(roots: tuple[Path, Path]) -> None:
    pictures = Pictures(*roots)
    ok, encoded = cv2.imencode(".bmp", _picture())
    assert ok
    path = roots[0] / "lying.jpg"
    path.write_bytes(encoded.tobytes())
    data = path.read_bytes()
    image = StoredImage(1, "lying.jpg", WIDTH, HEIGHT, hashlib.sha256(data).hexdigest(), len(data), False)
    view, media_type = pictures.view(image)
    assert media_type == "image/jpeg" and view.name == "view.jpg"
    assert os.path.getsize(view) < len(data)


def test_which_jpegs_a_browser_shows(tmp_path: Path) -> None:
    gray = tmp_path / "gray.jpg"
    assert cv2.imwrite(str(gray), _picture()[..., 0])
    progressive = tmp_path / "progressive.jpg"
    assert cv2.imwrite(str(progressive), _picture(), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert browser_type(gray) == browser_type(progressive) == "image/jpeg"
    data = bytearray(progressive.read_bytes())
    sof = data.index(b"\xff\xc2")
    assert data[sof + 9] == 3  # components
    data[sof + 9] = 4  # CMYK: a browser's colours would not be OpenCV's
    cmyk = tmp_path / "cmyk.jpg"
    cmyk.write_bytes(bytes(data))
    assert browser_type(cmyk) is None
