"""ms per image, measured side by side in one run on one checkpoint and one set of images:

  (a) ultralytics predict on the .pt                     (what users run today)
  (b) a bare onnxruntime session on the exported ONNX     (the model's own time: our floor)
  (c) seg-client through the served ensemble              (decode, letterbox, model, NMS, masks,
                                                            RLE, gRPC), one request at a time and
                                                            with requests in flight

Ratios, not absolute times, are what to compare: these machines are shared and noisy.
Run: make bench   (or: python -m benchmarks.serving_vs_predict --weights best.pt --images DIR)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from demo.offline import configure_offline_ultralytics

BIN = Path(sys.executable).parent


def _images(folder: Path | None, count: int, work: Path) -> list[Path]:
    if folder is not None:
        return sorted(
            p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
        )
    from training.synthetic import make_scene

    rng, out = np.random.default_rng(11), work / "images"
    out.mkdir()
    sizes = [(480, 640), (720, 1280), (640, 480), (1080, 1920), (375, 500), (600, 600)]
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        cv2.imwrite(str(out / f"img{i:03d}.jpg"), make_scene(h, w, rng)[0])
    return sorted(out.iterdir())


def _time_each(fn, items, warmup: int = 2) -> list[float]:
    for item in items[:warmup]:
        fn(item)
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t) * 1000)
    return times


def bench_ultralytics(weights: Path, images: list[Path], imgsz: int) -> list[float]:
    from ultralytics import YOLO

    model = YOLO(str(weights))
    return _time_each(lambda p: model.predict(str(p), imgsz=imgsz, retina_masks=True, verbose=False), images)


def bench_onnxruntime(onnx_path: Path, images: list[Path], imgsz: int) -> list[float]:
    import onnxruntime as ort

    from serving.python_backend.segops.letterbox import letterbox, to_model_input

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = [to_model_input(letterbox(cv2.imread(str(p)), (imgsz, imgsz))[0])[None] for p in images]
    return _time_each(lambda x: session.run(None, {"images": x}), inputs)


def bench_served(url: str, model: str, images: list[Path], concurrency: int, work: Path) -> float:
    """Wall ms per image for the client's own run loop (reads files, sends, writes JSON)."""
    from clients.image_sources import images_in_folder
    from clients.infer_run import run_images
    from clients.triton import SegmentationClient

    client = SegmentationClient(url)
    info = client.model_info(model)
    items = images_in_folder(images[0].parent)
    run_images(client, info, items[:4], work / "warmup", concurrency=concurrency)
    out = work / f"served-c{concurrency}"
    start = time.perf_counter()
    summary = run_images(client, info, items, out, concurrency=concurrency)
    elapsed = (time.perf_counter() - start) * 1000
    assert not summary.failed, summary.failed
    return elapsed / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, help="YOLOv8-seg .pt (default: a random-weight yolov8n-seg)")
    parser.add_argument("--images", type=Path, help="folder of images (default: generated scenes)")
    parser.add_argument("--count", type=int, default=30, help="generated images")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/output/serving_vs_predict.json"))
    args = parser.parse_args()
    configure_offline_ultralytics()
    from serving.tritonserver import TritonServer
    from training.random_checkpoint import make_random_yolo_seg

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        weights = args.weights or make_random_yolo_seg(work / "yolov8n-seg.pt", imgsz=args.imgsz)
        images = _images(args.images, args.count, work)
        repo = work / "repo"
        subprocess.run(
            [
                str(BIN / "build-repo"),
                "--model",
                "yolov8n-seg",
                "--weights",
                str(weights),
                "--output",
                str(repo),
                "--imgsz",
                str(args.imgsz),
                "--quiet",
            ],
            check=True,
        )
        print(f"{len(images)} images, imgsz {args.imgsz}, {weights.name}", flush=True)
        a = statistics.median(bench_ultralytics(weights, images, args.imgsz))
        print(f"(a) ultralytics predict (.pt)      {a:8.1f} ms/image (median)", flush=True)
        b = statistics.median(
            bench_onnxruntime(repo / "yolov8n-seg_model" / "1" / "model.onnx", images, args.imgsz)
        )
        print(f"(b) onnxruntime session, model only {b:7.1f} ms/image (median)", flush=True)
        with TritonServer(repo, log_path=work / "server.log") as server:
            c1 = bench_served(server.grpc_url, "yolov8n-seg", images, 1, work)
            print(f"(c) seg-client via Triton, 1 in flight  {c1:6.1f} ms/image", flush=True)
            c4 = bench_served(server.grpc_url, "yolov8n-seg", images, 4, work)
            print(f"(c) seg-client via Triton, 4 in flight  {c4:6.1f} ms/image", flush=True)
    result = {
        "images": len(images),
        "imgsz": args.imgsz,
        "a_ultralytics_ms": a,
        "b_onnxruntime_ms": b,
        "c_served_1_ms": c1,
        "c_served_4_ms": c4,
        "c1_over_a": c1 / a,
        "c1_over_b": c1 / b,
        "c4_over_a": c4 / a,
        "c4_over_b": c4 / b,
    }
    print(
        f"ratios: (c)/(a) = {c1 / a:.2f} (1 in flight), {c4 / a:.2f} (4 in flight); "
        f"(c)/(b) = {c1 / b:.2f}, {c4 / b:.2f}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
