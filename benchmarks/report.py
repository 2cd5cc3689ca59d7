# ruff: noqa: E501 - the RESULTS.md template holds long Markdown table lines
"""`make bench`: one run, one checkpoint, one set of images, every figure side by side, written to
benchmarks/RESULTS.md. Ratios are what to compare: these machines are shared and noisy.

  (a)  ultralytics predict on the .pt (its default rect input: padded only to the stride, as the
       served defaults pad), and with rect=False (the 640×640 square)
  (a') ultralytics predict on the exported ONNX (the square: ultralytics pads an ONNX only to the
       stride when it exported it as dynamic itself)
  (b)  a bare onnxruntime session, model only (the floor), on the inputs the server makes (padded to
       the stride), and on the square
  (b+) the same session with the server's own decode, letterbox and postprocess, in one process
  (c)  seg-client through the server: build-repo's defaults (one Python model, padded to the
       stride), the same as the square (--square), as the three-model ensemble (--ensemble), the
       latency setting
  (d)  perf_analyzer on the served model, and on the ensemble's <name>_model alone
  peak RSS of server and client, bytes per response, build-repo wall time and peak RSS;
  and the CPU runtimes (benchmarks/cpu_runtimes.py): ultralytics predict on its own OpenVINO FP32
  and INT8 exports, bare OpenVINO sessions of our network, (b++) the served work in the fastest
  single process, and the served python-openvino FP32 and INT8 builds, with the CPU's flags.

Targets (2-core CPU): P1 (c) ≥ 1.8×(a) and ≥ 1.0×(a') in throughput; P2 (c) ≤ 1.10×(b++), the
same work in one process on the same cores; P3 a response ≤ 5 % of the bytes of the
full-resolution masks it describes; P4 build-repo ≤ 30 s and ≤ 3 GiB peak RSS; served OpenVINO
FP32 ≥ 1.3× ultralytics' OpenVINO FP32 predict; served INT8 ≥ 1.3× ultralytics' INT8 predict and
≥ 1.8× the served defaults, with the accuracy guard passed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import psutil

from benchmarks import cpu_runtimes
from demo.offline import configure_offline_ultralytics

BIN = Path(sys.executable).parent
MODEL = "yolov8n-seg"
SIZES = [(480, 640), (720, 1280), (640, 480), (1080, 1920), (375, 500), (600, 600)]
LATENCY_SETTING = ["--instances", "1", "--threads", "0"]  # one network session on every core
ENSEMBLE_SETTING = ["--ensemble"]  # the defaults, as preprocess → network → postprocess
SQUARE_SETTING = ["--square"]  # the defaults, every image padded to the full square
OPENVINO_SETTING = ["--runtime", "python-openvino"]  # the defaults, the network on OpenVINO
CALIBRATION_IMAGES = 100  # build-repo --int8 and ultralytics' INT8 export calibrate on the same ones
DEFAULT_CONCURRENCY = 4  # seg-client infer's -j default: the targets are measured with it


class PeakRss:
    """Samples the summed RSS of a process and its children until stopped."""

    def __init__(self, pid: int, interval_s: float = 0.05):
        self.pid, self.interval, self.peak = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, int]:
    """(result, wall seconds, peak RSS bytes of the process tree)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRss(proc.pid) as rss:
        out, err = proc.communicate()
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return result, time.perf_counter() - start, rss.peak


def served_run(url: str, images: Path, out: Path, concurrency: int, model: str = MODEL) -> tuple[float, int]:
    """seg-client infer over the folder: (its own ms/image, its peak RSS)."""
    proc, _, rss = run_measured(
        [
            str(BIN / "seg-client"),
            "infer",
            "--source",
            str(images),
            "--model",
            model,
            "--url",
            url,
            "--out",
            str(out),
            "--overwrite",
            "--concurrency",
            str(concurrency),
        ]
    )
    return float(re.search(r"([\d.]+) ms/image", proc.stdout).group(1)), rss


def in_process_ms(onnx_path: Path, metadata, images: list[Path]) -> float:
    """(b+): what a user's own loop costs for the server's work on each file: decode, letterbox,
    the network (onnxruntime's default threads), NMS, masks and RLE, in one process."""
    import onnxruntime as ort

    from segops import instances
    from segops.decode import decode_image
    from segops.resize import prepare

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    thresholds = metadata.thresholds

    def one(data: np.ndarray) -> None:
        image = decode_image(data, metadata.max_pixels)
        x = prepare(image, metadata.input)
        pred, protos = session.run(["output0", "output1"], {"images": x[None]})
        instances.detect(pred[0], protos[0], image.shape[:2], x.shape[-2:], metadata.num_classes,
                         thresholds.conf, thresholds.iou, thresholds.max_det)  # fmt: skip

    return ms_per_image(one, [np.frombuffer(p.read_bytes(), np.uint8) for p in images])


def cpu_name() -> str:
    try:
        line = next(
            ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")
        )
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.machine()


def trained_checkpoint(work: Path) -> Path:
    """The demo's recipe (two generated CVAT exports, trained from scratch), unless it ran already."""
    existing = Path("demo_output/runs/train/weights/best.pt")
    if existing.is_file():
        return existing
    from demo.run import EPOCHS, IMAGES_PER_EXPORT, IMGSZ, TRAIN_ARGS, make_exports

    make_exports(work / "exports", IMAGES_PER_EXPORT)
    subprocess.run(
        [
            str(BIN / "seg-train"),
            "coco2yolo",
            "--src-dir",
            str(work / "exports"),
            "--dst-dir",
            str(work / "dataset"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(BIN / "seg-train"),
            "yolo",
            "--data",
            str(work / "dataset" / "data.yaml"),
            "--model",
            f"{MODEL}.yaml",
            "--epochs",
            str(EPOCHS),
            "--batch-size",
            "8",
            "--imgsz",
            str(IMGSZ),
            "--device",
            "cpu",
            "nbs=8",
            f"project={work / 'runs'}",
            "name=train",
            *TRAIN_ARGS,
        ],
        check=True,
        capture_output=True,
    )
    return work / "runs" / "train" / "weights" / "best.pt"


def make_images(folder: Path, count: int) -> list[Path]:
    from tests.fixtures.synthetic import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for i in range(count):
        h, w = SIZES[i % len(SIZES)]
        cv2.imwrite(str(folder / f"img{i:03d}.jpg"), make_scene(h, w, rng)[0])
    return sorted(folder.glob("*.jpg"))


def ms_per_image(fn, items, warmup: int = 3, passes: int = 2) -> float:
    """Best of ``passes`` passes over all items, after a warm-up: the same treatment every side gets
    (seg-client too), because one pass on a shared machine can be 20 % off."""
    for item in items[:warmup]:
        fn(item)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) * 1000 / len(items))
    return best


REPO_ROOT = Path(__file__).resolve().parents[1]


def _shown_path(path: Path) -> str:
    """``path`` as RESULTS.md records it: relative to the repository when it lies inside, so the
    file names no folder of the machine that measured it."""
    resolved = path.resolve()
    return resolved.relative_to(REPO_ROOT).as_posix() if resolved.is_relative_to(REPO_ROOT) else path.name


@dataclass
class ResponseSize:
    response_bytes: int
    full_mask_bytes: int
    images_with_detections: int


def response_sizes(url: str, images: list[Path]) -> ResponseSize:
    """gRPC response size vs the full-resolution masks it describes (one byte per pixel and mask)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    total, full, n = 0, 0, 0
    for path in images:
        tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[path.read_bytes()]], dtype=np.object_))
        result = client.infer(MODEL, [tensor])
        dets = int(result.as_numpy("num_detections")[0, 0])
        if dets:
            h, w = (int(v) for v in result.as_numpy("image_size")[0])
            total += result.get_response().ByteSize()
            full += dets * h * w
            n += 1
    return ResponseSize(total, full, n)


def add_common_arguments(parser: argparse.ArgumentParser, work: Path) -> None:
    """The options every benchmark of one checkpoint over generated scenes takes."""
    parser.add_argument("--weights", type=Path, help="a trained YOLOv8-seg .pt (default: the demo's recipe)")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--work", type=Path, default=work)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/RESULTS.md"))


def prepared(args: argparse.Namespace) -> tuple[Path, Path, list[Path]]:
    """(work folder, checkpoint, images) for ``args`` of :func:`add_common_arguments`."""
    configure_offline_ultralytics()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    weights = args.weights or trained_checkpoint(work)
    return work, weights, make_images(work / "images", args.images)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, Path("benchmarks/output/work"))
    args = parser.parse_args()
    work, weights, images = prepared(args)
    from serving.tritonserver import TritonServer

    repo, repo_ensemble, repo_latency = work / "repo", work / "repo-ensemble", work / "repo-latency"
    repo_square = work / "repo-square"
    repo_ov, repo_ov8 = work / "repo-openvino", work / "repo-openvino-int8"
    print(f"checkpoint {weights}; {len(images)} images; imgsz {args.imgsz}", flush=True)
    build = [str(BIN / "build-repo"), "--model", MODEL, "--weights", str(weights), "--imgsz", str(args.imgsz)]
    _, build_s, build_rss = run_measured([*build, "--output", str(repo), "--quiet"])
    run_measured([*build, "--output", str(repo_ensemble), "--quiet", *ENSEMBLE_SETTING])
    run_measured([*build, "--output", str(repo_square), "--quiet", *SQUARE_SETTING])
    run_measured([*build, "--output", str(repo_latency), "--quiet", *LATENCY_SETTING])
    print(f"build-repo: {build_s:.1f} s, peak RSS {build_rss / 2**30:.2f} GiB", flush=True)
    calibration = cpu_runtimes.calibration_images(work / "calibration", CALIBRATION_IMAGES)
    run_measured([*build, "--output", str(repo_ov), "--quiet", *OPENVINO_SETTING])
    int8_build = [*build, "--output", str(repo_ov8), *OPENVINO_SETTING, "--int8"]
    int8_build += ["--calibration-images", str(calibration)]
    guarded = subprocess.run([*int8_build, "--quiet"], capture_output=True, text=True)
    guard_refusal = None
    if guarded.returncode != 0:  # measured all the same, and the refusal reported
        guard_refusal = guarded.stderr.strip().splitlines()[-1]
        run_measured([*int8_build, "--quiet", "--accept-drop"])
    guard = json.loads((repo_ov8 / MODEL / "quantization.json").read_text())
    print(f"build-repo --int8: {guard['metric']} {guard['score']:.2f}, drop {guard['drop']:.2f}", flush=True)
    onnx_path = repo / MODEL / "1" / "model.onnx"  # any height and width
    square_onnx = repo_ensemble / f"{MODEL}_model" / "1" / "model.onnx"  # the square only

    from ultralytics import YOLO

    from model_checkpoints.ultralytics import load_yolo

    pt_model = load_yolo(weights)  # checked, as build-repo checks it
    a = ms_per_image(
        lambda p: pt_model.predict(str(p), imgsz=args.imgsz, retina_masks=True, verbose=False), images
    )
    print(f"(a)  ultralytics predict .pt:   {a:7.1f} ms/image", flush=True)
    a_square = ms_per_image(
        lambda p: pt_model.predict(str(p), imgsz=args.imgsz, retina_masks=True, rect=False, verbose=False),
        images,
    )
    print(f"(a)  ... with rect=False:       {a_square:7.1f} ms/image", flush=True)
    onnx_model = YOLO(str(square_onnx), task="segment")
    a2 = ms_per_image(
        lambda p: onnx_model.predict(str(p), imgsz=args.imgsz, retina_masks=True, rect=False, verbose=False),
        images,
    )
    print(f"(a') ultralytics predict ONNX:  {a2:7.1f} ms/image", flush=True)
    ov_fp32_dir, ov_int8_dir = cpu_runtimes.ultralytics_openvino_exports(
        weights, work, args.imgsz, calibration
    )
    a_ov = cpu_runtimes.predict_ms(ov_fp32_dir, images, args.imgsz)
    print(f"(a-ov) ultralytics predict OpenVINO FP32: {a_ov:7.1f} ms/image", flush=True)
    a_ov8 = cpu_runtimes.predict_ms(ov_int8_dir, images, args.imgsz)
    print(f"(a-ov) ultralytics predict OpenVINO INT8: {a_ov8:7.1f} ms/image", flush=True)

    import onnxruntime as ort

    from builder import triton_config
    from segcontract.model_metadata import ModelMetadata
    from segops.resize import InputSpec, prepare

    def bare_ms(path: Path, spec: InputSpec) -> float:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = [prepare(cv2.imread(str(p)), spec)[None] for p in images]
        return ms_per_image(lambda x: session.run(None, {"images": x}), inputs)

    config = triton_config.parse((repo / MODEL / "config.pbtxt").read_text())
    served_metadata = ModelMetadata.from_parameters({k: v.string_value for k, v in config.parameters.items()})
    served_spec = served_metadata.input
    b = bare_ms(onnx_path, served_spec)
    print(f"(b)  onnxruntime, model only, served inputs (stride {served_spec.stride}): {b:7.1f} ms/image")
    b_square = bare_ms(square_onnx, InputSpec(args.imgsz, args.imgsz, "letterbox"))
    print(f"(b)  ... on the square:         {b_square:7.1f} ms/image", flush=True)
    b_work = in_process_ms(onnx_path, served_metadata, images)
    print(f"(b+) the same with the server's pre/post-processing, in one process: {b_work:7.1f} ms/image")
    ov_xml, ov8_xml = (r / MODEL / "1" / "model.xml" for r in (repo_ov, repo_ov8))
    b_ov = cpu_runtimes.bare_ms(cpu_runtimes.openvino_runner(ov_xml, 0), served_spec, images)
    b_ov8 = cpu_runtimes.bare_ms(cpu_runtimes.openvino_runner(ov8_xml, 0), served_spec, images)
    print(f"(b)  OpenVINO FP32 / INT8, model only, served inputs: {b_ov:7.1f} / {b_ov8:7.1f} ms/image")
    cores = len(os.sched_getaffinity(0))
    fastest: dict[str, float] = {}
    for label, make in (
        ("onnxruntime", lambda: cpu_runtimes.onnxruntime_runner(onnx_path, 1)),
        ("OpenVINO FP32", lambda: cpu_runtimes.openvino_runner(ov_xml, 1)),
        ("OpenVINO INT8", lambda: cpu_runtimes.openvino_runner(ov8_xml, 1)),
    ):  # one worker per core, and one more to overlap a worker's wait: the faster counts
        fastest[label] = min(
            cpu_runtimes.pipeline_ms(make, served_metadata, images, n) for n in (cores, cores + 1)
        )
        print(f"(b++) the served work in the fastest single process, {label}: {fastest[label]:7.1f} ms/image")

    served: dict[str, float] = {}
    client_peak, server_peak = 0, 0
    for label, folder, levels in (
        ("defaults", repo, (1, DEFAULT_CONCURRENCY)),
        ("square", repo_square, (DEFAULT_CONCURRENCY,)),
        ("ensemble", repo_ensemble, (DEFAULT_CONCURRENCY,)),
        ("latency", repo_latency, (1, 4)),
        ("openvino", repo_ov, (DEFAULT_CONCURRENCY,)),
        ("openvino-int8", repo_ov8, (DEFAULT_CONCURRENCY,)),
    ):
        with (
            TritonServer(folder, log_path=work / f"tritonserver-{label}.log") as server,
            PeakRss(server.process.pid) as server_rss,
        ):
            warm_up = work / "warm-up"
            warm_up.mkdir(exist_ok=True)
            for image in images[:4]:
                (warm_up / image.name).write_bytes(image.read_bytes())
            run_measured(
                [
                    str(BIN / "seg-client"),
                    "infer",
                    "--source",
                    str(warm_up),
                    "--model",
                    MODEL,
                    "--url",
                    server.grpc_url,
                    "--out",
                    str(work / "warm-up-out"),
                    "--overwrite",
                    "--concurrency",
                    "4",
                ]
            )
            for concurrency in levels:
                ms, client_rss = min(
                    served_run(
                        server.grpc_url,
                        images[0].parent,
                        work / f"served-{label}-c{concurrency}",
                        concurrency,
                    )
                    for _ in range(2)
                )
                served[f"{label}, {concurrency} in flight"] = ms
                client_peak = max(client_peak, client_rss)
                print(
                    f"(c)  seg-client, {label} setting, {concurrency} in flight: {ms:7.1f} ms/image",
                    flush=True,
                )
            from clients.inference.perf import run_perf_analyzer, write_input_data

            if label == "defaults":
                data = write_input_data(images, work / "input_data.json")
                d = run_perf_analyzer(
                    MODEL, server.grpc_url, work / "perf", data, "1:4", requests_per_window=len(images)
                )
                sizes = response_sizes(server.grpc_url, images)
            if label == "ensemble":
                d_model = run_perf_analyzer(
                    f"{MODEL}_model",
                    server.grpc_url,
                    work / "perf",
                    None,
                    "1:4",
                    requests_per_window=len(images),
                )
        server_peak = max(server_peak, server_rss.peak)
    print(f"(d)  perf_analyzer: {[round(r.throughput, 2) for r in d]} infer/s", flush=True)

    c_default = served[f"defaults, {DEFAULT_CONCURRENCY} in flight"]
    c_ensemble = served[f"ensemble, {DEFAULT_CONCURRENCY} in flight"]
    c_ov = served[f"openvino, {DEFAULT_CONCURRENCY} in flight"]
    c_ov8 = served[f"openvino-int8, {DEFAULT_CONCURRENCY} in flight"]
    results = {
        "checkpoint": _shown_path(Path(weights)),
        "images": len(images),
        "imgsz": args.imgsz,
        "machine": f"{psutil.cpu_count()} CPU ({cpu_name()}), {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "a_ms": a,
        "a_square_ms": a_square,
        "a_onnx_ms": a2,
        "b_ms": b,
        "b_square_ms": b_square,
        "b_work_ms": b_work,
        "stride": served_spec.stride,
        "c_ms": served,
        "d": sorted((vars(r) for r in d), key=lambda x: x["concurrency"]),
        "d_model": sorted((vars(r) for r in d_model), key=lambda x: x["concurrency"]),
        "server_peak_rss": server_peak,
        "client_peak_rss": client_peak,
        "response_bytes": sizes.response_bytes,
        "full_mask_bytes": sizes.full_mask_bytes,
        "build_s": build_s,
        "build_rss": build_rss,
        "P1_vs_a": a / c_default,
        "P1_vs_a_square": a_square / c_default,
        "P1_vs_a_onnx": a2 / c_default,
        "P2": c_default / b,
        "P2_vs_b_square": c_default / b_square,
        "c_vs_b_work": c_default / b_work,
        "one_model_vs_ensemble": c_default / c_ensemble,
        "stride_vs_square": c_default / served[f"square, {DEFAULT_CONCURRENCY} in flight"],
        "P3": sizes.response_bytes / max(sizes.full_mask_bytes, 1),
        "cpu": cpu_runtimes.cpu_support(),
        "cores": cores,
        "calibration_images": CALIBRATION_IMAGES,
        "a_ov_ms": a_ov,
        "a_ov8_ms": a_ov8,
        "b_ov_ms": b_ov,
        "b_ov8_ms": b_ov8,
        "fastest_ms": fastest,
        "guard": guard,
        "guard_refusal": guard_refusal,
        "OV_vs_ultralytics_ov": a_ov / c_ov,
        "INT8_vs_ultralytics_int8": a_ov8 / c_ov8,
        "INT8_vs_defaults": c_default / c_ov8,
        "P2_restated": c_default / fastest["onnxruntime"],
        "ov_vs_fastest": c_ov / fastest["OpenVINO FP32"],
        "int8_vs_fastest": c_ov8 / fastest["OpenVINO INT8"],
    }
    (work / "results.json").write_text(json.dumps(results, indent=1))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(render(results) + other_sections(args.results, own=render(results)))
    print(f"wrote {args.results}")


def other_sections(path: Path, own: str) -> str:
    """The ``## `` sections of the existing file that this report does not write (other benchmarks',
    e.g. benchmarks/segment_store.py's), kept at the end."""
    if not path.exists():
        return ""
    headings = set(re.findall(r"^## .*$", own, re.MULTILINE))
    kept, keep = [], False
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("## "):
            keep = line.rstrip("\n") not in headings
        elif line.startswith("# "):
            keep = False
        if keep:
            kept.append(line)
    return ("\n" + "".join(kept)) if kept else ""


def write_section(path: Path, section: str) -> None:
    """Put ``section`` (its first line is its ``## `` heading) in place of the file's section of that
    heading, or at the end; every other section stays as it is (main() here keeps them too when it
    rewrites the file)."""
    heading = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    out, skipping, replaced = [], False, False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == heading:
            skipping, replaced = True, True
            out.append(section)
            continue
        if skipping and (line.startswith("## ") or line.startswith("# ")):
            skipping = False
            out.append("\n")
        if not skipping:
            out.append(line)
    if not replaced:
        out.append(("\n" if out and not out[-1].endswith("\n\n") else "") + section)
    path.write_text("".join(out))


def render(r: dict) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    c = r["c_ms"]
    d_rows = "\n".join(
        f"| {x['concurrency']} | {x['throughput']:.2f} | {x['p50_ms']:.0f} | {x['p95_ms']:.0f} | {x['p99_ms']:.0f} |"
        for x in r["d"]
    )
    m_rows = "\n".join(
        f"| {x['concurrency']} | {x['throughput']:.2f} | {x['p50_ms']:.0f} | {x['p99_ms']:.0f} |"
        for x in r["d_model"]
    )
    return (
        f"""# Benchmark results

Command: `make bench` (`python -m benchmarks.report`), one run, measured side by side.
Checkpoint: `{r["checkpoint"]}` (yolov8n-seg trained by the demo's recipe), served at {r["imgsz"]}×{r["imgsz"]};
{r["images"]} generated JPEG scenes of mixed sizes (480×640 to 1080×1920). Machine: {r["machine"]}.
Times are wall-clock per image over the whole set (throughput), after a warm-up, best of two passes.

| | ms / image | images / s |
|---|---|---|
| (a) ultralytics `predict` on the .pt (retina masks; its default input, padded to the stride) | {r["a_ms"]:.1f} | {1000 / r["a_ms"]:.2f} |
| (a) the same with `rect=False` (the full {r["imgsz"]}×{r["imgsz"]} square) | {r["a_square_ms"]:.1f} | {1000 / r["a_square_ms"]:.2f} |
| (a') ultralytics `predict` on the exported ONNX (the square) | {r["a_onnx_ms"]:.1f} | {1000 / r["a_onnx_ms"]:.2f} |
| (b) bare onnxruntime session, model only (floor), on the inputs the server makes (padded to stride {r["stride"]}) | {r["b_ms"]:.1f} | {1000 / r["b_ms"]:.2f} |
| (b) the same on the square | {r["b_square_ms"]:.1f} | {1000 / r["b_square_ms"]:.2f} |
| (b+) the same session with the server's own decode, letterbox and postprocess (NMS, masks, RLE), in one process, one image after another | {r["b_work_ms"]:.1f} | {1000 / r["b_work_ms"]:.2f} |
"""
        + "".join(
            f"| (c) seg-client through the server, {k} | {v:.1f} | {1000 / v:.2f} |\n" for k, v in c.items()
        )
        + f"""
Settings: *defaults* = build-repo's defaults (one Python model that decodes, runs the network and
post-processes in one process, each image padded only to a multiple of the stride as `predict`
does; two instances, each network session on its share of the cores the server sees: one thread
each on 2 cores), seg-client's default `-j {DEFAULT_CONCURRENCY}` for the targets; *square* = the same,
every image padded to the full square (`build-repo --square`): defaults / square =
{r["stride_vs_square"]:.2f}; *ensemble* = the same build as the three-model ensemble (`build-repo --ensemble`: preprocess →
network → postprocess, each a Python-backend process, two instances each): defaults / ensemble =
{r["one_model_vs_ensemble"]:.2f} at {DEFAULT_CONCURRENCY} in flight; *latency* = `build-repo --instances 1 --threads 0`
(one network session on every core). (d) below uses the defaults.

(d) perf_analyzer on the served model (gRPC, the same images as payloads):

| concurrency | infer/s | p50 ms | p95 ms | p99 ms |
|---|---|---|---|---|
{d_rows}

perf_analyzer on the ensemble's `{MODEL}_model` alone (random input of the model's shape):

| concurrency | infer/s | p50 ms | p99 ms |
|---|---|---|---|
{m_rows}

| resource | figure |
|---|---|
| server peak RSS (tritonserver and its Python-backend stubs) | {r["server_peak_rss"] / 2**20:.0f} MiB |
| client peak RSS (seg-client infer) | {r["client_peak_rss"] / 2**20:.0f} MiB |
| bytes per response vs full-resolution masks | {r["response_bytes"]} / {r["full_mask_bytes"]} = {100 * r["P3"]:.3f} % |
| build-repo (python-onnx) wall time, peak RSS | {r["build_s"]:.1f} s, {r["build_rss"] / 2**30:.2f} GiB |

## Targets

| target | measured | |
|---|---|---|
| P1 throughput (c) ≥ 1.8 × (a) | {r["P1_vs_a"]:.2f} × ((c): defaults, {DEFAULT_CONCURRENCY} in flight) | {verdict(r["P1_vs_a"] >= 1.8)} |
| P1 throughput (c) ≥ 1.0 × (a') | {r["P1_vs_a_onnx"]:.2f} × | {verdict(r["P1_vs_a_onnx"] >= 1.0)} |
| (c) / (a) with `rect=False`, the same pixels as served (not a target) | {r["P1_vs_a_square"]:.2f} × | |
| P2 restated: (c) defaults ≤ 1.10 × (b++) onnxruntime, the same work in the fastest single process, same cores | {r["P2_restated"]:.2f} × | {verdict(r["P2_restated"] <= 1.10)} |
| (c) ≤ 1.15 × (b) per image: P2 as it was, network only on one side (not a target) | {r["P2"]:.2f} × | |
| (c) / (b) on the square (not a target) | {r["P2_vs_b_square"]:.2f} × | |
| (c) / (b+), the same work done by hand in one process (not a target) | {r["c_vs_b_work"]:.2f} × | |
| P3 response ≤ 5 % of the full masks | {100 * r["P3"]:.3f} % | {verdict(r["P3"] <= 0.05)} |
| P4 build-repo ≤ 30 s and ≤ 3 GiB | {r["build_s"]:.1f} s, {r["build_rss"] / 2**30:.2f} GiB | {verdict(r["build_s"] <= 30 and r["build_rss"] <= 3 * 2**30)} |
"""
        + render_cpu_runtimes(r, verdict)
    )


def render_cpu_runtimes(r: dict, verdict) -> str:
    c, fastest, guard = r["c_ms"], r["fastest_ms"], r["guard"]
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in r["cpu"]["flags"].items())
    guard_ok = not guard["accepted_drop"] and r["guard_refusal"] is None
    guard_line = (
        f"{guard['metric']} {guard['score']:.2f} on {guard['held_out_images']} held-out images, "
        f"a drop of {guard['drop']:.2f} points (limit {guard['max_drop']:g})"
    )
    rows = [
        (
            "(a-ov) ultralytics `predict` on its own OpenVINO FP32 export (`format=openvino`, the square)",
            r["a_ov_ms"],
        ),
        (
            "(a-ov) ultralytics `predict` on its own OpenVINO INT8 export (`int8=True`, the same calibration images)",
            r["a_ov8_ms"],
        ),
        (
            "(b) bare OpenVINO FP32 session of our network, model only, the server's inputs (all cores)",
            r["b_ov_ms"],
        ),
        ("(b) bare OpenVINO INT8 session of our network, the same", r["b_ov8_ms"]),
        *(
            (
                f"(b++) the served work (decode, letterbox, network, NMS, masks, RLE) in the fastest single process: {k}, one-thread sessions, one worker thread per core (or one more)",
                v,
            )
            for k, v in fastest.items()
        ),
        (
            f"(c) served defaults (python-onnx), {DEFAULT_CONCURRENCY} in flight",
            c[f"defaults, {DEFAULT_CONCURRENCY} in flight"],
        ),
        (
            f"(c) served `--runtime python-openvino` (FP32), {DEFAULT_CONCURRENCY} in flight",
            c[f"openvino, {DEFAULT_CONCURRENCY} in flight"],
        ),
        (
            f"(c) served `--runtime python-openvino --int8`, {DEFAULT_CONCURRENCY} in flight",
            c[f"openvino-int8, {DEFAULT_CONCURRENCY} in flight"],
        ),
    ]
    table = "".join(f"| {label} | {ms:.1f} | {1000 / ms:.2f} |\n" for label, ms in rows)
    refusal = (
        f"\nThe guard refused the INT8 build: `{r['guard_refusal']}`; it was measured with --accept-drop.\n"
        if r["guard_refusal"]
        else ""
    )
    return f"""
## CPU runtimes: OpenVINO and INT8

The same run, checkpoint, images and cores as above. CPU: {flags}; OpenVINO {r["cpu"]["openvino"]}
(CPU plugin capabilities: {", ".join(r["cpu"]["openvino_capabilities"])}); {r["cores"]} cores usable.
INT8: `build-repo --runtime python-openvino --int8 --calibration-images DIR` on {r["calibration_images"]} generated
scenes (every fifth held out), NNCF's mixed preset, the head's box decoding left in FP32; ultralytics'
INT8 export calibrated on the same images. Accuracy guard: {guard_line}.
{refusal}
| | ms / image | images / s |
|---|---|---|
{table}
| target | measured | |
|---|---|---|
| served FP32 OpenVINO ≥ 1.3 × ultralytics' OpenVINO FP32 predict | {r["OV_vs_ultralytics_ov"]:.2f} × | {verdict(r["OV_vs_ultralytics_ov"] >= 1.3)} |
| served INT8 ≥ 1.3 × ultralytics' INT8 predict | {r["INT8_vs_ultralytics_int8"]:.2f} × | {verdict(r["INT8_vs_ultralytics_int8"] >= 1.3)} |
| served INT8 ≥ 1.8 × today's served defaults | {r["INT8_vs_defaults"]:.2f} × | {verdict(r["INT8_vs_defaults"] >= 1.8)} |
| the accuracy guard passed (drop ≤ {guard["max_drop"]:g} point of mask mAP50 against FP32) | {guard["drop"]:.2f} points | {verdict(guard_ok)} |
| P2 restated: served defaults ≤ 1.10 × (b++) onnxruntime | {r["P2_restated"]:.2f} × | {verdict(r["P2_restated"] <= 1.10)} |
| served OpenVINO FP32 / (b++) OpenVINO FP32 (not a target) | {r["ov_vs_fastest"]:.2f} × | |
| served INT8 / (b++) OpenVINO INT8 (not a target) | {r["int8_vs_fastest"]:.2f} × | |

GPU: no GPU machine was lent to this run, so the ONNX-on-CUDA and TensorRT rows are not measured.
"""


if __name__ == "__main__":
    main()
