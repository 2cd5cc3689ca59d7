# ruff: noqa: E501 - the RESULTS.md section holds long Markdown table lines
"""`make bench-fused`: the python-onnx ensemble (three Python-backend models: preprocess, the
onnxruntime session, postprocess) against one Python model that does all three in one process
(benchmarks/fused_model.py), behind the same tritonserver, on the same images, with seg-client's
defaults; passes alternate (ensemble, fused, ensemble, fused, ...) so the machine's drift hits
both. The answers must be the same: the fused model is only worth having if it is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from benchmarks.report import (
    BIN,
    MODEL,
    add_common_arguments,
    cpu_name,
    prepared,
    run_measured,
    served_run,
    write_section,
)

HEADING = "## One Python model instead of the ensemble (make bench-fused)"
FUSED = f"{MODEL}_fused"
PARTS = {  # what the fused model imports, from the folders build-repo wrote
    "image_preprocess.py": f"{MODEL}_preprocess",
    "onnx_model.py": f"{MODEL}_model",
    "yolo_seg_postprocess.py": f"{MODEL}_postprocess",
}


def add_fused_model(repo: Path) -> None:
    """``<MODEL>_fused`` beside the ensemble: the ensemble's inputs, outputs and record, the three
    models' parameters, the network model's instances."""
    from tritonclient.grpc import model_config_pb2 as mc

    from builder import triton_config

    configs = {p.parent.name: triton_config.parse(p.read_text()) for p in repo.glob(f"{MODEL}*/config.pbtxt")}
    fused = mc.ModelConfig()
    fused.CopyFrom(configs[MODEL])
    fused.name, fused.platform, fused.backend = FUSED, "", "python"
    fused.ClearField("ensemble_scheduling")
    fused.instance_group.extend(configs[f"{MODEL}_model"].instance_group)
    fused.dynamic_batching.SetInParent()
    for folder in PARTS.values():
        for key, value in configs[folder].parameters.items():
            fused.parameters[key].CopyFrom(value)
    target = repo / FUSED
    shutil.rmtree(target, ignore_errors=True)
    (target / "1").mkdir(parents=True)
    (target / "config.pbtxt").write_text(triton_config.to_text(fused))
    shutil.copy(Path(__file__).with_name("fused_model.py"), target / "1" / "model.py")
    for module, folder in PARTS.items():
        shutil.copy(repo / folder / "1" / "model.py", target / "1" / module)
    os.link(repo / f"{MODEL}_model" / "1" / "model.onnx", target / "1" / "model.onnx")
    for package in ("segops", "segcontract"):
        shutil.copytree(repo / f"{MODEL}_preprocess" / "1" / package, target / "1" / package)


def records(folder: Path) -> dict[str, list]:
    return {
        p.name: [
            (d["class_id"], d["segmentation"]["counts"]) for d in json.loads(p.read_text())["detections"]
        ]
        for p in sorted(folder.glob("*.json"))
        if p.name != "failures.json"
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser, Path("benchmarks/output/fused"))
    parser.add_argument("--passes", type=int, default=3, help="passes of each (alternating); default 3")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="seg-client -j (default 4, its own default)"
    )
    args = parser.parse_args()
    work, weights, images = prepared(args)
    from serving.tritonserver import TritonServer

    repo = work / "repo"
    run_measured([str(BIN / "build-repo"), "--model", MODEL, "--weights", str(weights), "--imgsz",
                  str(args.imgsz), "--output", str(repo), "--quiet"])  # fmt: skip
    add_fused_model(repo)
    times: dict[str, list[float]] = {MODEL: [], FUSED: []}
    start = time.monotonic()
    with TritonServer(repo, log_path=work / "tritonserver.log") as server:
        for model in (MODEL, FUSED):  # warm-up
            served_run(server.grpc_url, images[0].parent, work / f"warm-{model}", args.concurrency, model)
        for _ in range(args.passes):
            for model in (MODEL, FUSED):
                ms, _ = served_run(server.grpc_url, images[0].parent, work / model, args.concurrency, model)
                times[model].append(ms)
                print(f"{model:>22}: {ms:6.1f} ms/image", flush=True)
    same = records(work / MODEL) == records(work / FUSED)
    ensemble, fused = (statistics.median(times[m]) for m in (MODEL, FUSED))
    section = f"""{HEADING}

Command: `make bench-fused` (`python -m benchmarks.fused`), {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
{time.monotonic() - start:.0f} s of serving; {len(images)} generated JPEG scenes (480×640 to 1080×1920),
served at {args.imgsz}×{args.imgsz} by build-repo's defaults, seg-client `-j {args.concurrency}`;
machine: {os.cpu_count()} CPU ({cpu_name()}). Passes alternate; the median of {args.passes} each.

| served as | ms / image (median) | passes |
|---|---|---|
| the ensemble (preprocess → {MODEL}_model → postprocess, three processes) | {ensemble:.1f} | {", ".join(f"{t:.1f}" for t in times[MODEL])} |
| one Python model (benchmarks/fused_model.py) | {fused:.1f} | {", ".join(f"{t:.1f}" for t in times[FUSED])} |

fused / ensemble = {fused / ensemble:.2f}; the answers are {"the same, image by image" if same else "**not the same**"}.
"""
    print(section)
    write_section(args.results, section)
    print(f"wrote the section {HEADING!r} of {args.results}")


if __name__ == "__main__":
    main()
