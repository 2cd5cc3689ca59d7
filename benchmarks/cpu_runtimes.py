"""The CPU runtimes' part of `make bench` (benchmarks/report.py calls it in the same run, on the same
checkpoint, images and cores): ultralytics' own OpenVINO FP32 and INT8 exports with `predict`, bare
OpenVINO sessions of our network, the served per-image work done in the fastest single process we
could write, and what this CPU supports."""

from __future__ import annotations

import itertools
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
Runner = Callable[[np.ndarray], Sequence[np.ndarray]]  # a prepared input → (output0, output1)


def cpu_support() -> dict[str, object]:
    """The instruction sets behind INT8 and BF16 speed, as /proc/cpuinfo lists them, and what
    OpenVINO's CPU plugin says it can use."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(re.search(r"^flags\s*:(.*)$", text, re.MULTILINE).group(1).split())
    except (OSError, AttributeError):
        flags = set()
    import openvino as ov

    core = ov.Core()
    return {
        "flags": {f: f in flags for f in CPU_FLAGS},
        "openvino": ov.__version__ if hasattr(ov, "__version__") else ov.get_version(),
        "openvino_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
    }


def calibration_images(folder: Path, count: int) -> Path:
    """Scenes like the benchmark's, from another seed: what build-repo --int8 and ultralytics'
    INT8 export both calibrate on (ultralytics wants a dataset: ``images/`` and a data.yaml)."""
    from tests.fixtures.synthetic import make_scene

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(23)
    sizes = [(480, 640), (720, 1280), (640, 480), (375, 500)]
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        cv2.imwrite(str(images / f"cal{i:03d}.jpg"), make_scene(h, w, rng)[0])
    return images


def ultralytics_openvino_exports(
    weights: Path, work: Path, imgsz: int, calibration: Path
) -> tuple[Path, Path]:
    """``yolo export format=openvino`` and ``... int8=True data=...`` (NNCF, calibrated on
    ``calibration``), of a copy of the checkpoint in ``work`` (ultralytics writes beside it)."""
    from model_checkpoints.ultralytics import load_yolo  # the .pt checked, as build-repo checks it

    folder = work / "ultralytics-openvino"
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "model.pt"
    shutil.copy2(weights, copy)
    names = dict(load_yolo(copy).names)
    data = calibration.parent / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(calibration.parent), "train": "images", "val": "images",
                                    "names": names}))  # fmt: skip
    fp32 = load_yolo(copy).export(format="openvino", imgsz=imgsz, half=False, verbose=False)
    int8 = load_yolo(copy).export(format="openvino", imgsz=imgsz, int8=True, data=str(data), verbose=False)
    moved = []  # load_yolo exports from its own checked copy, in a temporary folder: bring them here
    for exported, name in ((fp32, "fp32_openvino_model"), (int8, "int8_openvino_model")):
        target = folder / name
        if target.exists():
            shutil.rmtree(target)  # this benchmark's own output of an earlier run
        shutil.move(str(exported), target)
        moved.append(target)
    return moved[0], moved[1]


def predict_ms(openvino_dir: Path, images: list[Path], imgsz: int) -> float:
    """ultralytics ``predict`` on an exported model folder, retina masks as the server makes them."""
    from ultralytics import YOLO

    from benchmarks.report import ms_per_image

    model = YOLO(str(openvino_dir), task="segment")
    return ms_per_image(
        lambda p: model.predict(str(p), imgsz=imgsz, retina_masks=True, verbose=False), images
    )


def openvino_runner(xml: Path, threads: int) -> Runner:
    """One OpenVINO request on ``threads`` threads (0: all), compiled as the served model compiles it."""
    from builder.openvino.ir import compile_on_cpu, read_ir

    compiled = compile_on_cpu(read_ir(xml), threads)
    request = compiled.create_infer_request()
    return lambda x: [request.infer({0: x})[port] for port in compiled.outputs]


def onnxruntime_runner(onnx: Path, threads: int) -> Runner:
    """One onnxruntime session on ``threads`` threads (0: all), not spinning between runs (a
    spinning session takes the cycles the other threads' decoding needs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})


def bare_ms(runner: Runner, spec, images: list[Path]) -> float:
    """The network alone on the inputs the server makes from ``images``."""
    from benchmarks.report import ms_per_image
    from segops.resize import prepare

    inputs = [prepare(cv2.imread(str(p)), spec)[None] for p in images]
    return ms_per_image(runner, inputs)


def pipeline_ms(make_runner: Callable[[], Runner], metadata, images: list[Path], workers: int) -> float:
    """The served model's work per file (decode, letterbox to the stride, the network, NMS, masks
    and RLE) in one process, ``workers`` threads each with its own one-thread network session, as
    the server's instances are: ms per image over the set (throughput), after a warm-up, best of
    two passes. OpenCV runs on one thread per call, so the workers do not fight over the cores."""
    from segops import instances
    from segops.decode import decode_image
    from segops.resize import prepare

    cv2.setNumThreads(1)
    thresholds = metadata.thresholds
    files = [np.frombuffer(p.read_bytes(), np.uint8) for p in images]
    runners = [make_runner() for _ in range(workers)]

    def one(run: Runner, data: np.ndarray) -> None:
        image = decode_image(data, metadata.max_pixels)
        x = prepare(image, metadata.input)
        pred, protos = run(x[None])[:2]
        instances.detect(pred[0], protos[0], image.shape[:2], x.shape[-2:], metadata.num_classes,
                         thresholds.conf, thresholds.iou, thresholds.max_det)  # fmt: skip

    def over(items: list[np.ndarray]) -> float:
        counter, lock = itertools.count(), threading.Lock()

        def work(run: Runner) -> None:
            while True:
                with lock:
                    i = next(counter)
                if i >= len(items):
                    return
                one(run, items[i])

        threads = [threading.Thread(target=work, args=(r,)) for r in runners]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return (time.perf_counter() - start) * 1000 / len(items)

    over(files[: 2 * workers])  # warm-up: every session's first runs
    return min(over(files) for _ in range(2))
