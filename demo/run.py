"""The main job, end to end on this machine, with the real commands a user types:

  synthetic CVAT exports → seg-train coco2yolo → seg-train yolo → build-repo → seg-serve →
  seg-client infer → seg-client evaluate (pycocotools COCOeval), next to ultralytics' own val.

Everything runs on the embedded defaults: CPU, and the tritonserver from the nvidia-pytriton wheel.
No download: the model trains from scratch (yolov8n-seg.yaml) on generated scenes for a few minutes,
so its scores are modest; the point is that the served model scores what ultralytics says it scores.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from demo.offline import configure_offline_ultralytics

MODEL = "yolov8n-seg"
BIN = Path(sys.executable).parent
SIZES = ((192, 256), (256, 192), (224, 224))
IMAGES_PER_EXPORT, EPOCHS, IMGSZ = 150, 26, 160  # the recipe's data, length and input size
# Enough optimizer steps for a from-scratch model to learn the shapes within minutes on 2 cores:
# a step per batch (nbs = batch), AdamW at a higher rate, a short warm-up; no mosaic (it shrinks
# these small scenes' shapes to a few pixels at 160 px), validation only after the last epoch.
TRAIN_ARGS = [
    "workers=2",
    "plots=False",
    "optimizer=AdamW",
    "lr0=0.003",
    "warmup_epochs=1",
    "mosaic=0.0",
    "close_mosaic=0",
    "val=False",
    "exist_ok=True",
    "seed=0",
    "deterministic=True",
]


def run(*args: str) -> str:
    print(f"\n$ {shlex.join(args)}", flush=True)
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        sys.exit(f"demo: {args[0]} failed with exit code {proc.returncode}")
    return proc.stdout


def make_exports(root: Path, images_per_dataset: int) -> None:
    """Two CVAT exports whose categories carry different ids, as happens between projects."""
    from tests.fixtures.synthetic import write_coco_dataset

    rng = np.random.default_rng(0)
    write_coco_dataset(
        root / "cvat_project_a",
        {"circle": 1, "rectangle": 2, "triangle": 3},
        images_per_dataset,
        rng,
        sizes=SIZES,
        max_objects=3,
    )
    write_coco_dataset(
        root / "cvat_project_b",
        {"triangle": 4, "circle": 9, "rectangle": 17},
        images_per_dataset,
        rng,
        sizes=SIZES,
        max_objects=3,
    )


def start_server(repository: Path, log: Path) -> tuple[subprocess.Popen, str]:
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
        str(log),
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
    sys.exit(f"demo: seg-serve did not become ready; see {log}")


def ultralytics_val(weights: Path, data: Path, imgsz: int) -> dict[str, float]:
    from model_checkpoints.ultralytics import load_yolo  # checked, as build-repo and seg-train check

    print(f"\n>>> YOLO('{weights}').val(data='{data}', imgsz={imgsz}, conf=0.001, iou=0.7)", flush=True)
    metrics = load_yolo(weights).val(
        data=str(data),
        imgsz=imgsz,
        batch=8,
        conf=0.001,
        iou=0.7,
        plots=False,
        device="cpu",
        workers=0,
        verbose=False,
    )
    return {
        "box_map50": metrics.box.map50,
        "box_map": metrics.box.map,
        "mask_map50": metrics.seg.map50,
        "mask_map": metrics.seg.map,
    }


def ultralytics_predict_cocoeval(
    weights: Path, images: Path, ground_truth: Path, imgsz: int
) -> dict[str, float]:
    """ultralytics' own predict (its default letterbox, padded to the stride, as the server pads)
    scored by the same COCOeval: it
    separates what serving changes (nothing, if this row equals the served one) from what the two
    metric implementations disagree on."""
    from pycocotools import mask as mask_utils

    from clients.inference.coco_eval import load_ground_truth, score_results
    from model_checkpoints.ultralytics import load_yolo

    gt, model, results = load_ground_truth(ground_truth), load_yolo(weights), []
    category = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    for image in gt.dataset["images"]:
        r = model.predict(
            str(images / image["file_name"]),
            imgsz=imgsz,
            conf=0.001,
            iou=0.7,
            retina_masks=True,
            max_det=300,
            verbose=False,
        )[0]
        if r.masks is None:
            continue
        for box, score, cls, mask in zip(
            r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy(), r.masks.data.numpy()
        ):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            results.append(
                {
                    "image_id": image["id"],
                    "category_id": category[model.names[int(cls)]],
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                    "score": float(score),
                    "segmentation": {**rle, "counts": rle["counts"].decode()},
                }
            )
    return dict(zip(["box_map50", "box_map", "mask_map50", "mask_map"], score_results(ground_truth, results)))


PARITY_CONF = 0.25  # the served overlays' run and ultralytics' predict, both at ultralytics' default


def served_vs_predict_parity(weights: Path, images: Path, records: Path, imgsz: int) -> str:
    """Detection-level parity of the served model with ultralytics' predict, both at PARITY_CONF."""
    from clients.inference.parity import Dets, Parity, compare
    from clients.triton.image_sources import images_in_folder, output_names
    from model_checkpoints.ultralytics import load_yolo

    model, total = load_yolo(weights), Parity()
    items = images_in_folder(images)
    for item, name in output_names(items).items():
        ref = model.predict(str(item.path), imgsz=imgsz, conf=PARITY_CONF, retina_masks=True, verbose=False)
        ref = ref[0]
        served = Dets.from_record(json.loads((records / f"{name}.json").read_text()))
        total.merge(compare(Dets.from_ultralytics(ref), served, PARITY_CONF))
    return total.summary()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--images", type=int, default=IMAGES_PER_EXPORT, help="images per synthetic export")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--imgsz", type=int, default=IMGSZ)
    args = parser.parse_args()
    configure_offline_ultralytics()
    out, start = args.out.resolve(), time.monotonic()
    exports, dataset = out / "cvat_exports", out / "dataset"

    print("== 1. two CVAT COCO exports (generated scenes; category ids differ between them)", flush=True)
    make_exports(exports, args.images)
    print(f"{exports}: {', '.join(p.name for p in sorted(exports.iterdir()))}")

    print("\n== 2. merge and convert them to one YOLO-seg dataset", flush=True)
    run(
        "seg-train",
        "coco2yolo",
        "--src-dir",
        str(exports),
        "--dst-dir",
        str(dataset),
        "--val-fraction",
        "0.2",
    )

    print("\n== 3. train yolov8n-seg from scratch, briefly (CPU)", flush=True)
    run(
        "seg-train",
        "yolo",
        "--data",
        str(dataset / "data.yaml"),
        "--model",
        f"{MODEL}.yaml",
        "--epochs",
        str(args.epochs),
        "--batch-size",
        "8",
        "--imgsz",
        str(args.imgsz),
        "--device",
        "cpu",
        "nbs=8",
        f"project={out / 'runs'}",
        "name=train",
        *TRAIN_ARGS,
    )
    weights = out / "runs" / "train" / "weights" / "best.pt"

    print("\n== 4. build the Triton model repository", flush=True)
    repository = out / "model_repository"
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
        "--imgsz",
        str(args.imgsz),
    )

    print("\n== 5. serve it and query it with the held-out images", flush=True)
    server, url = start_server(repository, out / "tritonserver.log")
    # the second run (at PARITY_CONF) writes its JSON to `parity` and, with --overlay, its images
    # to <--out>/overlays, as infer always does
    results, parity = out / "results" / "val", out / "results" / f"val-conf{PARITY_CONF:g}"
    overlays = parity / "overlays"
    try:
        run(
            "seg-client",
            "infer",
            "--source",
            str(dataset / "images" / "val"),
            "--model",
            MODEL,
            "--url",
            url,
            "--out",
            str(results),
            "--conf",
            "0.001",
            "--overwrite",
        )
        run(
            "seg-client",
            "infer",
            "--source",
            str(dataset / "images" / "val"),
            "--model",
            MODEL,
            "--url",
            url,
            "--out",
            str(parity),
            "--conf",
            str(PARITY_CONF),
            "--overlay",
            "--overwrite",
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)

    print(
        f"\n== 6. served detections vs ultralytics predict(retina_masks=True), both at conf {PARITY_CONF}",
        flush=True,
    )
    print(served_vs_predict_parity(weights, dataset / "images" / "val", parity, args.imgsz), flush=True)

    print(
        "\n== 7. score the served model (COCOeval) next to ultralytics' val of the same checkpoint",
        flush=True,
    )
    served = run(
        "seg-client",
        "evaluate",
        "--annotations",
        str(dataset / "annotations" / "val.json"),
        "--results",
        str(results),
    )
    served_scores = dict(
        zip(
            ["box_map50", "box_map", "mask_map50", "mask_map"],
            map(
                float,
                re.findall(r"mAP50 ([\d.]+)  mAP50-95 ([\d.]+)", served)[0]
                + re.findall(r"mAP50 ([\d.]+)  mAP50-95 ([\d.]+)", served)[1],
            ),
        )
    )
    reference = ultralytics_val(weights, dataset / "data.yaml", args.imgsz)
    same_metric = ultralytics_predict_cocoeval(
        weights, dataset / "images" / "val", dataset / "annotations" / "val.json", args.imgsz
    )
    rows = (
        ("served, COCOeval", served_scores),
        ("ultralytics val", reference),
        ("ultralytics predict, COCOeval", same_metric),
    )
    print(f"\n{'':30}{'box mAP50':>10}{'box mAP50-95':>14}{'mask mAP50':>12}{'mask mAP50-95':>15}")
    for label, row in rows:
        print(
            f"{label:30}{row['box_map50']:>10.4f}{row['box_map']:>14.4f}"
            f"{row['mask_map50']:>12.4f}{row['mask_map']:>15.4f}"
        )
    print("(last row: ultralytics' own predict, letterboxed as the server does, scored like the first row)")
    gap = abs(served_scores["mask_map50"] - reference["mask_map50"])
    print(f"mask mAP50, served vs ultralytics val: difference {gap:.4f}")
    scores = {
        "served": served_scores,
        "ultralytics_val": reference,
        "ultralytics_predict_cocoeval": same_metric,
        "mask_map50_difference": gap,
    }
    (out / "scores.json").write_text(json.dumps(scores, indent=1))
    print(f"\nDone in {time.monotonic() - start:.0f} s. Outputs under {out}:")
    print(f"  dataset          {dataset}  (data.yaml, conversion_report.json)")
    print(f"  checkpoint       {weights}  (TensorBoard: tensorboard --logdir {out / 'runs'})")
    print(f"  model repository {repository}")
    print(f"  per-image JSON   {results}")
    print(f"  overlays         {overlays}  (conf {PARITY_CONF}; that run's JSON in {parity})")
    print(f"  scores           {out / 'scores.json'}")


if __name__ == "__main__":
    main()
