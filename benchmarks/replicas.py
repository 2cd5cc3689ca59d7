"""`make bench-replicas`: what a second Triton replica does for throughput, measured side by side in one
run: one checkpoint, one model repository, one set of images; two tritonserver processes on loopback
(the same repository, started one after the other, stopped by PID), a ``clients.triton.replicas.ReplicaSet``
over the first (1 replica) and one over both (2), a concurrency sweep.

For each concurrency, ``--passes`` passes per replica count, back to back and in turns (odd passes
1 then 2, even ones 2 then 1: these machines are shared and noisy, so the two sides see the same
load); each pass sends every image once with ``concurrency`` requests in flight (one thread each)
after a short warm-up. images/s is requests / summed wall time, p50 and p95 the latency of the single
requests, *answers per replica* how the client spread them, *server CPU* the cores the servers in the
set (and their Python-backend stubs) kept busy meanwhile.

On a machine whose replicas share the same few cores (a 2-core VM) a second replica adds no compute:
the ratio 2 / 1 replica shows the cost (or gain) of spreading over two processes, not scaling. Where
each replica has its own GPU or cores (the Kubernetes deployment: one GPU per pod), the same run
measures the scaling.

    python -m benchmarks.replicas [--quick] [--concurrency 1,2,4,8] [--passes 2] [--images 40]
        [--checkpoint PT] [--imgsz N] [--build-args "--instances 2 --threads 1"] [--results MD]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

from benchmarks.report import BIN, MODEL, cpu_name, make_images, run_measured, write_section
from demo.offline import configure_offline_ultralytics

HEADING = "## Replicas (make bench-replicas)"
RANDOM_MAX_DET = 20  # random weights find hundreds of boxes; cap them as benchmarks.segment_store does
CACHED_CHECKPOINTS = (  # where benchmarks.report (and the demo, bench-store) leave a trained one
    Path("demo_output/runs/train/weights/best.pt"),
    Path("benchmarks/output/work/runs/train/weights/best.pt"),
    Path("benchmarks/output/segment_store/work/runs/train/weights/best.pt"),
)


def checkpoint(args: argparse.Namespace, work: Path) -> tuple[Path, str, dict]:
    """(weights, how they were made, the per-request overrides to send)."""
    if args.checkpoint:
        return args.checkpoint, "given with --checkpoint", {}
    for cached in CACHED_CHECKPOINTS:
        if cached.is_file():
            return cached.resolve(), "yolov8n-seg trained on generated shapes (the demo's recipe), cached", {}
    # tests.fixtures is importable from benchmarks (no import-linter contract forbids it;
    # benchmarks.segment_store does the same): one recipe for random weights, not two
    from tests.fixtures.random_checkpoints import make_random_yolo_seg

    path = work / "yolov8n-seg-random.pt"
    if not path.is_file():
        make_random_yolo_seg(path, imgsz=320)
    how = (
        "random-weight yolov8n-seg (tests/fixtures/random_checkpoints; no trained checkpoint cached), "
        f"`max_det={RANDOM_MAX_DET}` on every request"
    )
    return path, how, {"max_det": RANDOM_MAX_DET}


def served_size(repo: Path) -> int:
    config = (repo / MODEL / "config.pbtxt").read_text()
    found = re.search(r'key: "input_height"\s*value\s*\{\s*string_value: "(\d+)"', config)
    return int(found.group(1)) if found else 0


def server_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these servers and their children (the stubs)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def run_all(fn, items: list, in_flight: int) -> None:
    """``fn`` on every item, ``in_flight`` at a time. On Ctrl-C the requests not yet sent are dropped
    at once (the caller's ``ReplicaSet.close()`` then ends those in flight)."""
    pool = ThreadPoolExecutor(max_workers=in_flight)
    try:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def warm_up(replicas, payloads: list[bytes], in_flight: int, overrides: dict) -> None:
    """``2 × in_flight`` requests, ``in_flight`` at a time (cycling through the payloads)."""
    batch = [payloads[i % len(payloads)] for i in range(2 * in_flight)]
    run_all(lambda p: replicas.infer_instances(MODEL, p, overrides), batch, in_flight)


def measure_pass(replicas, payloads: list[bytes], concurrency: int, overrides: dict, pids: list[int]):
    """Every payload once, ``concurrency`` in flight: (wall s, request latencies s, answers per replica,
    CPU seconds of each server, CPU seconds of this process: the client)."""
    before = replicas.requests_per_replica()
    latencies: list[float] = []
    lock = threading.Lock()

    def one(payload: bytes) -> None:
        started = time.perf_counter()
        replicas.infer_instances(MODEL, payload, overrides)
        took = time.perf_counter() - started
        with lock:
            latencies.append(took)

    cpu_before = [server_cpu_s([pid]) for pid in pids]
    client_before = time.process_time()
    started = time.perf_counter()
    run_all(one, payloads, concurrency)
    wall = time.perf_counter() - started
    client = time.process_time() - client_before
    cpu = [server_cpu_s([pid]) - b for pid, b in zip(pids, cpu_before)]
    after = replicas.requests_per_replica()
    return wall, latencies, [after[url] - before[url] for url in after], cpu, client


def row_of(count: int, concurrency: int, passes: list) -> dict:
    """One table row from its passes: images/s over their summed wall time, percentiles over all
    their requests."""
    wall = sum(p[0] for p in passes)
    ms = np.array([t for p in passes for t in p[1]]) * 1000
    cpu = [sum(p[3][i] for p in passes) for i in range(len(passes[0][3]))]
    return {
        "replicas": count,
        "concurrency": concurrency,
        "requests": len(ms),
        "wall_s": wall,
        "images_per_s": len(ms) / wall,
        "images_per_s_each_pass": [len(p[1]) / p[0] for p in passes],
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "answers": [sum(p[2][i] for p in passes) for i in range(len(passes[0][2]))],
        "server_cores_busy": sum(cpu[:count]) / wall,  # the servers in the set
        "idle_server_cores_busy": sum(cpu[count:]) / wall,  # the second server, while out of the set
        "client_cores_busy": sum(p[4] for p in passes) / wall,
    }


def measure(args: argparse.Namespace) -> dict:
    from clients.triton.replicas import ReplicaSet
    from serving.tritonserver import TritonServer

    load_before = os.getloadavg()[0]
    work = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    weights, how, overrides = checkpoint(args, work)
    images = make_images(work / f"images-{args.images}", args.images)
    payloads = [p.read_bytes() for p in images]
    repo = work / "repo"
    build = [str(BIN / "build-repo"), "--model", MODEL, "--weights", str(weights), "--runtime", "python-onnx"]
    build += [*(["--imgsz", str(args.imgsz)] if args.imgsz else []), *args.build_args]
    _, build_s, _ = run_measured([*build, "--output", str(repo), "--quiet"])
    imgsz = served_size(repo)
    print(
        f"checkpoint {weights} ({how}); {len(images)} images; served at {imgsz}; build-repo {build_s:.0f} s"
    )
    print(f"build-repo {' '.join(build[1:])}", flush=True)

    rows: list[dict] = []
    with ExitStack() as stack:
        servers: list = []
        for i in range(2):  # one, then a second on the same repository
            server = TritonServer(repo, log_path=work / f"tritonserver-{i}.log")
            server.start()  # from this (the main) thread: the server dies with it
            stack.callback(server.stop)  # by its PID, however the run ends (Ctrl-C included)
            servers.append(server)
            print(f"tritonserver {i + 1} on {server.grpc_url} (pid {server.process.pid})", flush=True)
        pids = [s.process.pid for s in servers]
        sets = {}
        for count in (1, 2):
            replicas = ReplicaSet([s.grpc_url for s in servers[:count]], on_event=print)
            stack.callback(replicas.close)
            replicas.model_info(MODEL)
            sets[count] = replicas
        warm_up(sets[2], payloads, 8, overrides)  # every instance of both servers
        for concurrency in args.concurrency:
            passes: dict[int, list] = {1: [], 2: []}
            for n in range(args.passes):
                for count in (1, 2) if n % 2 == 0 else (2, 1):  # back to back, in turns
                    warm_up(sets[count], payloads, concurrency, overrides)  # this level's threads
                    passes[count].append(measure_pass(sets[count], payloads, concurrency, overrides, pids))
            for count in (1, 2):
                row = row_of(count, concurrency, passes[count])
                rows.append(row)
                print(
                    f"{count} replica(s), {concurrency} in flight: {row['images_per_s']:6.2f} images/s "
                    f"(passes {', '.join(f'{v:.2f}' for v in row['images_per_s_each_pass'])}), "
                    f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, answers "
                    f"{'/'.join(map(str, row['answers']))}, servers {row['server_cores_busy']:.2f} cores, "
                    f"client {row['client_cores_busy']:.2f}",
                    flush=True,
                )
    rows.sort(key=lambda x: (x["replicas"], x["concurrency"]))
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks.replicas", *sys.argv[1:]]),
        "checkpoint": str(weights),
        "checkpoint_how": how,
        "images": len(images),
        "imgsz": imgsz,
        "passes": args.passes,
        "build_repo": " ".join(["--runtime python-onnx", *args.build_args]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_name(),
            "memory_gib": psutil.virtual_memory().total / 2**30,
            "platform": platform.platform(),
        },
        "load_average": [load_before, os.getloadavg()[0]],
        "rows": rows,
    }


def ratios(r: dict) -> dict[int, tuple[float, list[float]]]:
    """Per concurrency: 2-replica images/s over 1-replica images/s, over all passes and pass by pass
    (the two passes of a pair ran back to back)."""
    by = {(x["replicas"], x["concurrency"]): x for x in r["rows"]}
    out = {}
    for (n, c), one in by.items():
        if n == 1 and (2, c) in by:
            two = by[2, c]
            each = [b / a for a, b in zip(one["images_per_s_each_pass"], two["images_per_s_each_pass"])]
            out[c] = (two["images_per_s"] / one["images_per_s"], each)
    return out


def notes(r: dict) -> list[str]:
    """What the figures mean, said from the figures of this run (nothing assumed)."""
    cores, ratio, rows = r["machine"]["cpus_usable"], ratios(r), r["rows"]
    by = {(x["replicas"], x["concurrency"]): x for x in rows}
    total = {c: v for c, (v, _) in ratio.items()}
    out = [
        f"2 / 1 replica: {min(total.values()):.2f} to {max(total.values()):.2f} across concurrency "
        f"{', '.join(map(str, total))} (the second table)."
    ]
    margin = 0.05
    if 1 in ratio:
        margin = max(margin, abs(ratio[1][0] - 1), *(abs(v - 1) for v in ratio[1][1]))
        out.append(
            f"At concurrency 1 only one request is ever in flight, so two replicas cannot overlap "
            f"anything: the ratio there ({ratio[1][0]:.2f}; pass by pass "
            f"{', '.join(f'{v:.2f}' for v in ratio[1][1])}) is the client's spreading overhead plus "
            f"the machine's noise; read the other rows against it (±{margin:.2f})."
        )
    if cores < 2 * 2:  # two replicas of the defaults hold 4 sessions of a thread or more each
        busy = ", ".join(
            f"{by[1, c]['server_cores_busy']:.2f} → {by[2, c]['server_cores_busy']:.2f} at {c}" for c in total
        )
        text = (
            f"What this means here: both tritonservers ran on the same {cores} cores, so the second "
            "replica added no compute, only a second process with its own queue and instances; the "
            "ratio is the cost (or gain) of spreading requests over two processes on one CPU, not "
            f"scaling. Cores the servers kept busy, 1 → 2 replicas, per concurrency: {busy}."
        )
        above = [c for c, (v, each) in ratio.items() if c > 1 and v > 1 + margin and min(each) > 1]
        below = [c for c, (v, each) in ratio.items() if c > 1 and v < 1 - margin and max(each) < 1]
        within = [c for c in total if c > 1 and c not in above + below]
        if above:
            text += (
                f" Above 1 by more than the noise (concurrency {', '.join(map(str, above))}): two "
                "servers (twice the instances of every step) kept the same cores busier than one did "
                "(the cores above): more work in flight at once, not more compute; that gain stops at "
                "the cores there are."
            )
        if below:
            text += (
                f" Below 1 by more than the noise (concurrency {', '.join(map(str, below))}): the "
                "second process cost more than it overlapped, two servers' threads contending for "
                "the same cores."
            )
        if within:
            text += (
                f" Within the noise of 1 (or its passes disagree): concurrency {', '.join(map(str, within))}."
            )
        out.append(text)
        used = max(x["server_cores_busy"] + x["client_cores_busy"] for x in rows)
        out.append(
            f"Servers and client together kept at most {used:.2f} of the {cores} cores busy in any row; "
            "the rest went to other work on this shared machine (the load averages above) or stayed "
            "idle: the figures depend on what else ran, and the pass-by-pass ratios show how much "
            "they moved."
        )
    idle = max(x["idle_server_cores_busy"] for x in rows if x["replicas"] == 1)
    spread = [x for x in rows if x["replicas"] == 2]
    worst = max(spread, key=lambda x: abs(x["answers"][0] - x["answers"][1]) / x["requests"])
    out += [
        f"The second server stays up through the 1-replica rows (out of that client's set); it used "
        f"at most {idle:.2f} cores meanwhile.",
        "Spread: each request went to the ready replica with the fewest requests in flight, ties to "
        "the one sent fewest so far (warm-ups and earlier rows included, so a row's split also evens "
        f"out the rows before it); the most uneven 2-replica row split {worst['requests']} requests "
        f"{' / '.join(map(str, worst['answers']))} (concurrency {worst['concurrency']}).",
        "Where each replica has its own GPU or cores (the Kubernetes deployment: one GPU per pod), the "
        "same run measures the scaling: `python -m benchmarks.replicas` on that machine, or pointed at "
        "a repository built for it with `--build-args`.",
    ]
    return out


def render(r: dict) -> str:
    m = r["machine"]
    machine = (
        f"{m['cpu_count']} CPU ({m['cpu_model']}), {m['cpus_usable']} usable by this process, "
        f"{m['memory_gib']:.0f} GiB"
    )
    lines = [
        HEADING,
        "",
        f"Command: `make bench-replicas` (`{r['command']}`), run {r['date']}, {r['wall_s']:.0f} s wall time. "
        f"One checkpoint ({r['checkpoint_how']}), one repository (build-repo {r['build_repo']}, served at "
        f"{r['imgsz']}×{r['imgsz']}), {r['images']} generated JPEG scenes of mixed sizes (375×500 to "
        "1080×1920). Two tritonserver processes on loopback ports, the same repository, started one after "
        "the other; a `clients.triton.replicas.ReplicaSet` over the first (1 replica) and one over both "
        f"(2). Each row: {r['passes']} pass{'es' if r['passes'] > 1 else ''} over every image with "
        "*concurrency* threads, each pass after a short warm-up and back to back with the other replica "
        "count's, in turns (odd passes 1 then 2, even ones 2 then 1), so both see the same machine; "
        "images/s is requests / summed wall time, "
        "p50/p95 the latency of single requests. *Server CPU*: cores the servers in the set (and their "
        "Python-backend stubs) kept busy; *client CPU*: this process (the ReplicaSet and its threads). "
        f"Machine: {machine}; 1-minute load average "
        f"{r['load_average'][0]:.1f} at the start, {r['load_average'][1]:.1f} at the end.",
        "",
        "| replicas | concurrency | images/s | p50 ms | p95 ms | answers per replica "
        "| server CPU (cores busy) | client CPU (cores busy) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {x['replicas']} | {x['concurrency']} | {x['images_per_s']:.2f} | {x['p50_ms']:.0f} | "
            f"{x['p95_ms']:.0f} | {' / '.join(map(str, x['answers']))} | {x['server_cores_busy']:.2f} | "
            f"{x['client_cores_busy']:.2f} |"
        )
    lines += [
        "",
        "| concurrency | 2-replica / 1-replica images/s | pass by pass |",
        "|---|---|---|",
        *(f"| {c} | {v:.2f} | {', '.join(f'{e:.2f}' for e in each)} |" for c, (v, each) in ratios(r).items()),
        "",
        *(f"- {note}" for note in r.get("notes", [])),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def concurrency_list(value: str) -> list[int]:
    levels = [int(v) for v in value.split(",") if v.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("give positive integers, comma-separated: 1,2,4,8")
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="a YOLOv8-seg .pt (default: a cached trained one, else random weights)",
    )
    parser.add_argument("--images", type=int, default=40, help="generated scenes (default 40)")
    parser.add_argument("--passes", type=int, default=2, help="times every image is sent per row (default 2)")
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 2, 4, 8], help="default 1,2,4,8")
    parser.add_argument("--imgsz", type=int, help="served input size (default: the checkpoint's)")
    parser.add_argument(
        "--build-args",
        default="",
        help="more build-repo options (default: none; build-repo's defaults share each server's cores "
        "between two instances)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 12 images, concurrency 1,4, 1 pass (RESULTS.md untouched unless --results)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/output/replicas"))
    parser.add_argument(
        "--results", type=Path, help="the Markdown file to write (default benchmarks/RESULTS.md)"
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.passes, args.concurrency = 12, 1, [1, 4]
    elif args.results is None:
        args.results = Path("benchmarks/RESULTS.md")
    if args.images < 1 or args.passes < 1:
        parser.error("--images and --passes must be at least 1")
    args.build_args = args.build_args.split()
    configure_offline_ultralytics()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    # SIGTERM unwinds like Ctrl-C: the finally blocks close the client and stop every tritonserver
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    started = time.perf_counter()
    try:
        results = measure(args)
    except KeyboardInterrupt:
        sys.exit("interrupted: the tritonservers it started are stopped")
    results["wall_s"] = time.perf_counter() - started
    results["ratio_2_over_1"] = {c: v for c, (v, _) in ratios(results).items()}
    results["notes"] = notes(results)
    (args.out.resolve() / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(render(results))
    print(f"wrote {args.out / 'results.json'} ({results['wall_s']:.0f} s in all)")
    if args.results:
        write_section(args.results, render(results))
        print(f"wrote the section {HEADING!r} of {args.results}")


if __name__ == "__main__":
    main()
