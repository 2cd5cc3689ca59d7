"""Helpers shared by several test modules. A helper two test modules need lives here, never in one of
them for the other to import (random-weight checkpoints are tests/fixtures/random_checkpoints.py's).

Module level imports only the standard library, numpy, OpenCV, psutil and the shared layers, so a
test of the base install (no torch) can import it; torch, builder/ and the other tests modules
are imported by the helpers that need them."""

from __future__ import annotations

import contextlib
import json
import struct
import subprocess
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import psutil

from segcontract.engines import RECORD_FILE, EngineRecord, GpuInfo
from segops.decode import decode_image
from segops.resize import InputSpec, prepare
from segops.segment_crop import crop_segment


# --- masks -----------------------------------------------------------------------------------
def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (anything non-zero is inside); two empty masks are the
    same mask, so 1.0."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = int(np.logical_or(a, b).sum())
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# --- images made without the code under test -------------------------------------------------
def constant_png(width: int, height: int) -> bytes:
    """A gray PNG of any size, written row by row: 20000×20000 is about 390 KB, made in a second."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    deflate = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then gray 0
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


# --- seg-serve as a process ------------------------------------------------------------------
SEG_SERVE_READY = "seg-serve: ready."
SHM = Path("/dev/shm")
PYTHON_BACKEND_STUB = "triton_python_backend_stub"


def wait_seg_serve_ready(proc: subprocess.Popen, timeout_s: float = 180) -> list[str]:
    """seg-serve's stderr lines up to and including its "ready" line."""
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while time.monotonic() < deadline and not (lines and SEG_SERVE_READY in lines[-1]):
        line = proc.stderr.readline()
        assert line or proc.poll() is None, f"seg-serve exited before it was ready: {lines}"
        lines.append(line)
    assert lines and SEG_SERVE_READY in lines[-1], lines
    return lines


@contextlib.contextmanager
def seg_serve_cleanup(*procs: subprocess.Popen):
    """However the test ends: kill by PID every process these seg-serves started, and the seg-serves,
    and remove the /dev/shm regions of their stubs. Yields ``remember()``, which notes the
    processes started so far (call it before killing a seg-serve -9: its children are then
    orphans no longer found under it)."""
    seen: dict[int, psutil.Process] = {}
    regions: set[Path] = set()

    def remember() -> None:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    seen[child.pid] = child
                    with contextlib.suppress(psutil.Error, IndexError):
                        if Path(child.cmdline()[0]).name == PYTHON_BACKEND_STUB:
                            regions.add(SHM / child.cmdline()[2])

    try:
        yield remember
    finally:
        remember()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for child in seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        for region in regions:
            region.unlink(missing_ok=True)


# --- TensorRT engine folders (no engine inside) ----------------------------------------------
H100_GPU = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
ENGINE_RECORD = EngineRecord("10.5.0.18", H100_GPU, "fp16", 1, 8, 8)


def write_engine_model(repo: Path, name: str = "seg_model", record: EngineRecord | None = ENGINE_RECORD):
    """A tensorrt_plan model folder as build-repo writes it (the plan itself is not read here)."""
    from builder import triton_config
    from segcontract.tensors import TensorSpec
    from tests.schema_check import validate

    folder = repo / name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.plan").write_bytes(b"not an engine")
    settings = triton_config.ModelSettings(
        name,
        [TensorSpec("images", "float32", (3, 64, 64))],
        [TensorSpec("output0", "float32", (8,))],
        8,
        parameters=record.to_parameters() if record else {},
    )
    triton_config.write(triton_config.tensorrt_model_config(settings), folder)
    if record is not None:
        (folder / RECORD_FILE).write_text(record.to_json())
        validate(json.loads(record.to_json()), "engine_record")
    return folder


# --- the classifier family: its checkpoint, build, images and PyTorch reference --------------
CLASSIFIER_CLASS_NAMES = ("circle", "square", "triangle")
CLASSIFIER_IMGSZ = 96
CLASSIFIER_NAME = "shapes_cls"
CLASSIFIER_TOLERANCE = 1e-3  # served probabilities against the network's softmax
# (height, width, extension, gray): several sizes, JPEG and PNG, and a gray PNG
CLASSIFIER_IMAGES = [
    (96, 96, "png", False),
    (300, 200, "jpg", False),
    (480, 640, "png", False),
    (33, 517, "jpg", False),
    (250, 180, "png", True),
    (120, 160, "bmp", False),
]


def make_classifier_checkpoint(folder: Path) -> Path:
    """The random-weight classifier checkpoint of these classes and size, in ``folder``."""
    from tests.fixtures.random_checkpoints import make_random_classifier

    return make_random_classifier(folder / "shapes_cls.ckpt", CLASSIFIER_CLASS_NAMES, CLASSIFIER_IMGSZ)


def write_classifier_images(folder: Path, seed: int = 11) -> Path:
    """One synthetic scene per CLASSIFIER_IMAGES entry, written into ``folder``."""
    from tests.fixtures.synthetic import make_scene

    rng = np.random.default_rng(seed)
    for i, (h, w, ext, gray) in enumerate(CLASSIFIER_IMAGES):
        image = make_scene(h, w, rng)[0]
        cv2.imwrite(str(folder / f"img{i}.{ext}"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if gray else image)
    return folder


def build_classifier_repository(
    checkpoint: Path, output: Path, *args: str, runtime: str = "python-onnx"
) -> Path:
    """build-repo --model classifier, served as CLASSIFIER_NAME."""
    from tests.conftest import run_cli

    run_cli(
        "build-repo",
        "--model",
        "classifier",
        "--weights",
        str(checkpoint),
        "--name",
        CLASSIFIER_NAME,
        "--output",
        str(output),
        "--runtime",
        runtime,
        *args,
        "--quiet",
    )
    return output


class ClassifierReference:
    """The checkpoint's network in PyTorch (eval mode) and softmax, fed as the server feeds it."""

    def __init__(self, checkpoint: Path):
        from model_checkpoints.classifier import load_network

        self.info, self.network = load_network(checkpoint)
        h = self.info.input_size[1]
        w = self.info.input_size[0]
        self.spec = InputSpec(h, w, self.info.resize, self.info.mean, self.info.std, "CHW")

    def probabilities(self, image_bgr: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(prepare(image_bgr, self.spec)[None])
        with torch.no_grad():
            return torch.softmax(self.network(x), dim=1)[0].numpy()

    def file_probabilities(self, path: Path) -> np.ndarray:
        return self.probabilities(decode_image(Path(path).read_bytes()))

    def segment_probabilities(self, image_bgr, box, mask) -> np.ndarray:
        crop = crop_segment(image_bgr, box, mask, margin=self.info.segment_margin, mean_rgb=self.info.mean)
        return self.probabilities(crop)


def assert_same_probabilities(served: np.ndarray, expected: np.ndarray, what: str) -> float:
    """|Δ| ≤ CLASSIFIER_TOLERANCE and the same top-1; returns the top-1 margin of ``expected``."""
    assert served.shape == expected.shape, what
    assert np.abs(served - expected).max() <= CLASSIFIER_TOLERANCE, f"{what}: {served} vs {expected}"
    assert int(served.argmax()) == int(expected.argmax()), f"{what}: top-1 differs: {served} vs {expected}"
    top = np.sort(expected)[::-1]
    return float(top[0] - top[1])


def group_data_root(root: Path, images: Path, group: str) -> Path:
    """``root``/DATA/pictures/scenes holding a copy of ``images``, and ``root``/DATA/datasets/
    ``group``.txt listing them: a group as `segments build --group` reads it."""
    import shutil

    pictures = root / "DATA" / "pictures"
    shutil.copytree(images, pictures / "scenes")
    names = sorted(p.relative_to(pictures).as_posix() for p in pictures.rglob("*") if p.is_file())
    (root / "DATA" / "datasets").mkdir(parents=True)
    (root / "DATA" / "datasets" / f"{group}.txt").write_text("\n".join(names) + "\n")
    return root


def review_images(store, names, status, model: str | None = None) -> tuple[int, list[str]]:
    """Every segment of the named images (of ``model`` only, if given) given ``status`` by the
    reviewer "tests". Returns (segments now of that status, names matching no stored image)."""
    from store.records import SegmentSelection

    selection = SegmentSelection(images=tuple(names), model=model)
    outcome = store.review_segments(selection, status, "tests", "tests")
    return outcome.changed + outcome.unchanged, outcome.unknown_names


def segment_of_mask(
    segment_id: int,
    mask: np.ndarray,
    class_id: int = 0,
    class_name: str | None = None,
    score: float = 0.9,
    image_id: int = 1,
    image: str = "a/1.jpg",
    model: str = "seg",
    status=None,
):
    """A StoredSegment of ``mask`` (its real COCO RLE and box), as the store hands them out."""
    from pycocotools import mask as mask_utils

    from store.records import Status, StoredSegment

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    height, width = mask.shape
    return StoredSegment(
        id=segment_id,
        image_id=image_id,
        image=image,
        width=width,
        height=height,
        model=model,
        model_version="v1",
        class_id=class_id,
        class_name=class_name if class_name is not None else f"class{class_id}",
        score=score,
        bbox=(x, y, x + w, y + h),
        rle={"size": [height, width], "counts": rle["counts"].decode("ascii")},
        status=status or Status.UNCHECKED,
    )


SEMANTIC_IMAGE_SHAPES = [(96, 128, "png"), (300, 200, "jpg"), (480, 640, "webp"), (33, 517, "bmp")]


def write_semantic_images(folder: Path) -> Path:
    """The four scenes (sizes, formats) the semantic parity checks run on."""
    import cv2
    import numpy as np

    from tests.fixtures.synthetic import make_scene

    rng = np.random.default_rng(2)
    for i, (h, w, ext) in enumerate(SEMANTIC_IMAGE_SHAPES):
        cv2.imwrite(str(folder / f"img{i}.{ext}"), make_scene(h, w, rng)[0])
    return folder
