"""The main job, end to end on this machine: checkpoint → build-repo → seg-serve → seg-client.

Runs the real commands a user types, on an embedded default (the tritonserver from the
nvidia-pytriton wheel, on CPU), and checks the served masks against ultralytics' own predict.
Until training lands (issue 3), the checkpoint is a random-weight YOLOv8n-seg whose BatchNorm was
calibrated so it detects things: its detections are arbitrary, the pipeline around them is real.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from demo.offline import configure_offline_ultralytics

OUT = Path("demo_output")
MODEL = "yolov8n-seg"
IMGSZ = 320
BIN = Path(sys.executable).parent


def run(*args: str) -> str:
    print(f"\n$ {shlex.join(args)}", flush=True)
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="", flush=True)
    if proc.returncode not in (0,):
        sys.exit(f"demo: {args[0]} failed with exit code {proc.returncode}")
    return proc.stdout


def make_inputs() -> tuple[Path, Path]:
    from training.random_checkpoint import make_random_yolo_seg
    from training.synthetic import make_scene

    weights = make_random_yolo_seg(OUT / "weights" / f"{MODEL}-random.pt", model=MODEL, imgsz=IMGSZ)
    images = OUT / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i, (h, w, ext) in enumerate(
        [
            (480, 640, "jpg"),
            (640, 480, "png"),
            (720, 1280, "webp"),
            (333, 517, "bmp"),
            (1080, 1920, "jpg"),
            (400, 300, "png"),
        ]
    ):
        cv2.imwrite(str(images / f"scene{i}.{ext}"), make_scene(h, w, rng)[0])
    return weights, images


def start_server(repository: Path) -> tuple[subprocess.Popen, str]:
    args = [
        "seg-serve",
        "--model-repository",
        str(repository),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--metrics-port",
        "0",
        "--log-file",
        str(OUT / "tritonserver.log"),
    ]
    print(f"\n$ {shlex.join(args)} &", flush=True)
    proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line:
            print(line, end="", flush=True)
        if "ready" in line:
            return proc, re.search(r"gRPC (\S+)", line).group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit(f"demo: seg-serve did not become ready; see {OUT / 'tritonserver.log'}")


def compare_with_ultralytics(weights: Path, images: Path, results: Path) -> str:
    from ultralytics import YOLO

    from clients.parity import Dets, Parity, compare

    model, total = YOLO(str(weights)), Parity()
    for image in sorted(images.iterdir()):
        ref = model.predict(str(image), imgsz=IMGSZ, conf=0.5, rect=False, retina_masks=True, verbose=False)[
            0
        ]
        total.merge(
            compare(
                Dets.from_ultralytics(ref),
                Dets.from_record(json.loads((results / f"{image.stem}.json").read_text())),
                0.5,
            )
        )
    return total.summary()


def main() -> None:
    configure_offline_ultralytics()
    start = time.monotonic()
    print("== 1. a YOLOv8n-seg checkpoint and some images", flush=True)
    weights, images = make_inputs()
    print(f"checkpoint {weights}, {len(list(images.iterdir()))} images in {images}")
    repository, results = OUT / "model_repository", OUT / "results"
    print("\n== 2. build the Triton model repository", flush=True)
    run(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(weights),
        "--output",
        str(repository),
        "--runtime",
        "python-onnx",
        "--conf",
        "0.5",
    )
    print("\n== 3. serve it", flush=True)
    server, grpc_url = start_server(repository)
    try:
        print("\n== 4. query it", flush=True)
        run(
            "seg-client",
            "infer",
            "--source",
            str(images),
            "--model",
            MODEL,
            "--url",
            grpc_url,
            "--out",
            str(results),
            "--overlay",
            "--overwrite",
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(
        "\n== 5. compare with ultralytics predict(rect=False, retina_masks=True) on the same checkpoint",
        flush=True,
    )
    print(compare_with_ultralytics(weights, images, results))
    print(f"\nDone in {time.monotonic() - start:.0f} s. Outputs:")
    print(f"  model repository  {repository.resolve()}")
    print(f"  per-image JSON    {results.resolve()}/<image>.json")
    print(f"  overlays          {(results / 'overlays').resolve()}/")
    print(f"  server log        {(OUT / 'tritonserver.log').resolve()}")


if __name__ == "__main__":
    main()
