"""`make bench-store`: what the segment store costs `seg-client segments build`, measured side by
side with `seg-client infer` in one run (these machines are shared and noisy: compare the ratios).

  1. images/s of `segments build` against `infer`: the same images, the same served model, the
     same -j, on SQLite and on PostgreSQL (when initdb is installed); build/infer is the store's
     overhead. Each pass runs every side once on a fresh store, in a rotating order; the figure of
     a side is its best pass.
  2. what the store holds per 1000 images: rows in images / segments / segmentations, bytes of the
     database (SQLite: the .db file plus -wal after `PRAGMA wal_checkpoint(TRUNCATE)`; PostgreSQL:
     `pg_database_size`), less what an empty migrated store takes, plus segments per image and
     bytes of rle_counts per segment.

    python -m benchmarks.segment_store [--images N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import psutil

from benchmarks.report import BIN, MODEL, SIZES, cpu_name, trained_checkpoint
from demo.offline import configure_offline_ultralytics

GROUP = "bench"
TABLES = ("images", "segments", "segmentations")


def run(cmd: list[str]) -> tuple[str, float]:
    """Run a command to the end (killed by its PID if we are interrupted): (stdout, wall seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-2000:]}\n{err[-2000:]}")
    return out, time.perf_counter() - started


def own_seconds(stdout: str) -> float:
    """The command's own timer, from its summary line `... (in 12.3 s, ...)`: the run over the images,
    without interpreter start-up, imports, the model's metadata or opening the store."""
    found = re.findall(r"\(in ([\d.]+) s", stdout)
    if not found:
        raise SystemExit(f"no '(in N s' in the command's output:\n{stdout[-2000:]}")
    return float(found[-1])


def data_root(work: Path, count: int) -> tuple[Path, float]:
    """DATA/pictures/scenes with ``count`` generated scenes of mixed sizes (benchmarks.report's
    images: the same sizes and seed), the group listing them and a small warm-up group; also the
    mean number of objects drawn per scene."""
    from tests.fixtures.synthetic import make_scene

    root = work / "root"
    scenes = root / "DATA" / "pictures" / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    names, drawn = [], 0
    for i in range(count):
        image, instances = make_scene(*SIZES[i % len(SIZES)], rng)
        cv2.imwrite(str(scenes / f"img{i:04d}.jpg"), image)
        names.append(f"scenes/img{i:04d}.jpg")
        drawn += len(instances)
    for stale in set(scenes.iterdir()) - {root / "DATA" / "pictures" / n for n in names}:
        stale.unlink()  # left by an earlier run with more images
    (root / "DATA" / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "DATA" / "datasets" / f"{GROUP}.txt").write_text("\n".join(names) + "\n")
    (root / "DATA" / "datasets" / "warm-up.txt").write_text("\n".join(names[:8]) + "\n")
    return root, drawn / count


def served_size(repo: Path) -> int:
    config = (repo / MODEL / "config.pbtxt").read_text()
    return int(re.search(r'key: "input_height"\s*value\s*\{\s*string_value: "(\d+)"', config).group(1))


def checkpoint(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    """(weights, how they were made). A checkpoint trained by an earlier run under --out is reused."""
    if args.weights:
        return args.weights, "given with --weights"
    if args.random_weights:
        from tests.fixtures.random_checkpoints import make_random_yolo_seg

        path = make_random_yolo_seg(work / "yolov8n-seg-random.pt", imgsz=args.imgsz or 320)
        return path, f"random weights (tests/fixtures/random_checkpoints), --max-det {args.max_det}"
    cached = work / "runs" / "train" / "weights" / "best.pt"
    if cached.is_file():
        return cached, "yolov8n-seg trained on generated shapes (the demo's recipe), cached"
    print("training the checkpoint (the demo's recipe: 30 epochs on generated shapes)...", flush=True)
    started = time.perf_counter()
    path = trained_checkpoint(work)
    took = time.perf_counter() - started
    print(f"trained in {took:.0f} s", flush=True)
    return path, f"yolov8n-seg trained on generated shapes (the demo's recipe) in {took:.0f} s"


def sqlite_facts(url: str) -> tuple[dict[str, int], int, float]:
    """(rows per table, bytes of .db plus -wal after a checkpoint, mean bytes of rle_counts)."""
    path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        rle = conn.execute("SELECT avg(length(CAST(rle_counts AS BLOB))) FROM segments").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return rows, size, float(rle or 0)


def postgres_facts(url: str) -> tuple[dict[str, int], int, float]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
            rle = conn.execute(text("SELECT avg(octet_length(rle_counts)) FROM segments")).scalar_one()
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    finally:
        engine.dispose()
    return rows, int(size), float(rle or 0)


class Stores:
    """Fresh stores for each pass: SQLite files under the work folder, databases on one PostgreSQL."""

    def __init__(self, work: Path, stack: ExitStack):
        self.folder = work / "stores"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.postgres = None
        self.skipped_postgres = ""
        self.version = ""
        from tests.fixtures.postgres import postgres_bin, start_postgres

        bin_dir = postgres_bin()
        if bin_dir is None:
            self.skipped_postgres = "PostgreSQL skipped: no initdb (Debian: apt-get install postgresql)"
            print(self.skipped_postgres, flush=True)
            return
        self.postgres = start_postgres(bin_dir)
        stack.callback(self.postgres.stop)  # by the postmaster's PID
        version = subprocess.run([str(bin_dir / "initdb"), "--version"], capture_output=True, text=True)
        found = re.search(r"\) (\d[\w.]*)", version.stdout)  # initdb (PostgreSQL) 15.18 (Debian ...)
        self.version = found.group(1) if found else version.stdout.strip()
        print(f"PostgreSQL {self.version} on port {self.postgres.port} (pid {self.postgres.pid})", flush=True)

    @property
    def kinds(self) -> list[str]:
        return ["sqlite", "postgresql"] if self.postgres else ["sqlite"]

    def fresh(self, kind: str, label: str) -> str:
        if kind == "postgresql":
            return self.postgres.create_database(prefix=f"bench_{label}")
        path = self.folder / f"{label}.db"
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        return f"sqlite:///{path}"

    def facts(self, kind: str, url: str) -> tuple[dict[str, int], int, float]:
        return postgres_facts(url) if kind == "postgresql" else sqlite_facts(url)

    def sqlite_synchronous(self) -> str:
        """PRAGMA synchronous on a connection the store opens (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA)."""
        from sqlalchemy import text

        from store.segment_store import SegmentStore

        with SegmentStore.open(self.fresh("sqlite", "pragma")) as store, store.engine.connect() as conn:
            level = conn.execute(text("PRAGMA synchronous")).scalar_one()
        return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))

    def empty_size(self, kind: str) -> int:
        """Bytes of a store migrated to the schema's head and holding nothing."""
        from store.segment_store import SegmentStore

        url = self.fresh(kind, "empty")
        SegmentStore.open(url).close()
        return self.facts(kind, url)[1]


def measure(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]
    out = args.out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    weights, how = checkpoint(args, work)
    count = args.images
    root, drawn = data_root(work, count)
    repo = work / "repo"
    build = [str(BIN / "build-repo"), "--model", MODEL, "--weights", str(weights), "--runtime", "python-onnx"]
    build += ["--imgsz", str(args.imgsz)] if args.imgsz else []
    _, build_s = run([*build, "--output", str(repo), "--quiet"])
    imgsz = served_size(repo)
    print(f"checkpoint {weights} ({how}); {count} images; served at {imgsz}; build-repo {build_s:.0f} s")
    if args.random_weights:
        limits = ["--max-det", str(args.max_det)]
    else:
        limits = ["--conf", str(args.conf)] if args.conf is not None else []
    common = ["--model", MODEL, "--data-root", str(root), "-j", str(args.concurrency), *limits]

    from serving.tritonserver import TritonServer

    with ExitStack() as stack:
        stores = Stores(work, stack)
        server = stack.enter_context(TritonServer(repo, log_path=work / "tritonserver.log"))
        url = ["--url", server.grpc_url]
        print(f"tritonserver on {server.grpc_url} (pid {server.process.pid})", flush=True)
        seg = str(BIN / "seg-client")

        def infer(group: str) -> tuple[str, float]:
            out_dir = work / f"infer-{group}"
            return run([seg, "infer", "--group", group, *common, *url, "--out", str(out_dir), "--overwrite"])

        infer("warm-up")  # the server's first requests, and the page cache of the images
        sides = ["infer", *stores.kinds]
        passes: dict[str, list[dict]] = {side: [] for side in sides}
        last_url: dict[str, str] = {}
        for n in range(args.passes):
            for side in sides[n % len(sides) :] + sides[: n % len(sides)]:
                if side == "infer":
                    stdout, wall = infer(GROUP)
                else:
                    last_url[side] = stores.fresh(side, f"pass{n}")
                    stdout, wall = run(
                        [seg, "segments", "build", "--group", GROUP, *common, *url, "--db", last_url[side]]
                    )
                    if f"{count} segmented, 0 skipped" not in stdout:
                        raise SystemExit(f"segments build did not segment every image:\n{stdout}")
                own = own_seconds(stdout)
                passes[side].append({"own_s": own, "wall_s": wall})
                rate = f"{count / own:6.2f} images/s ({own:.1f} s, whole process {wall:.1f} s)"
                print(f"pass {n + 1} {side:>10}: {rate}", flush=True)
        rates = {
            side: {
                "images_per_s": count / min(p["own_s"] for p in runs),
                "process_images_per_s": count / min(p["wall_s"] for p in runs),
                "passes": runs,
            }
            for side, runs in passes.items()
        }
        stored = {}
        for kind in stores.kinds:
            rows, size, rle = stores.facts(kind, last_url[kind])
            empty = stores.empty_size(kind)
            if rows["images"] != count or rows["segmentations"] != count:
                raise SystemExit(f"{kind}: expected {count} images and segmentations, found {rows}")
            stored[kind] = {
                "rows": rows,
                "bytes": size,
                "empty_bytes": empty,
                "rows_per_1000_images": {t: v * 1000 / count for t, v in rows.items()},
                "bytes_per_1000_images": (size - empty) * 1000 / count,
                "segments_per_image": rows["segments"] / count,
                "rle_bytes_per_segment": rle,
            }
    memory_gib = psutil.virtual_memory().total / 2**30
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks.segment_store", *sys.argv[1:]]),
        "checkpoint": str(weights),
        "checkpoint_how": how,
        "images": count,
        "imgsz": imgsz,
        "objects_drawn_per_image": drawn,
        "request_options": " ".join(limits),
        "concurrency": args.concurrency,
        "passes": args.passes,
        "build_repo": "--runtime python-onnx (defaults)",
        "machine": f"{psutil.cpu_count()} CPU ({cpu_name()}), {memory_gib:.0f} GiB",
        "load_average": [load_before, os.getloadavg()[0]],
        "postgres_skipped": stores.skipped_postgres,
        "postgres_version": stores.version,
        "sqlite_synchronous": stores.sqlite_synchronous(),
        "rates": rates,
        "stored": stored,
    }


NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def render(r: dict) -> str:
    infer = r["rates"]["infer"]
    lines = [
        f"{r['images']} generated scenes of mixed sizes (375×500 to 1080×1920), served at "
        f"{r['imgsz']}×{r['imgsz']} (build-repo {r['build_repo']}), -j {r['concurrency']}, best of "
        f"{r['passes']} passes; on every command `{r['request_options'] or 'the defaults'}`. Checkpoint: "
        f"{r['checkpoint_how']}; the scenes hold {r['objects_drawn_per_image']:.2f} objects each. "
        f"Machine: {r['machine']}; 1-minute load average {r['load_average'][0]:.1f} at the start, "
        f"{r['load_average'][1]:.1f} at the end.",
        "",
        "| | images/s | build / infer | build / infer, each pass | images/s, whole process | "
        "build / infer, whole process |",
        "|---|---|---|---|---|---|",
        f"| `seg-client infer` (JSON files) | {infer['images_per_s']:.2f} | 1 | | "
        f"{infer['process_images_per_s']:.2f} | 1 |",
    ]
    for kind in r["stored"]:
        side = r["rates"][kind]
        each = ", ".join(f"{i['own_s'] / b['own_s']:.2f}" for b, i in zip(side["passes"], infer["passes"]))
        lines.append(
            f"| `seg-client segments build`, {NAMES[kind]} | {side['images_per_s']:.2f} | "
            f"{side['images_per_s'] / infer['images_per_s']:.2f} | {each} | "
            f"{side['process_images_per_s']:.2f} | "
            f"{side['process_images_per_s'] / infer['process_images_per_s']:.2f} |"
        )
    lines += [
        "",
        "| store | rows per 1000 images: images / segments / segmentations | MiB per 1000 images | "
        f"size after {r['images']} images (empty store) | segments per image | "
        "rle_counts bytes per segment |",
        "|---|---|---|---|---|---|",
    ]
    for kind, s in r["stored"].items():
        per = s["rows_per_1000_images"]
        lines.append(
            f"| {NAMES[kind]} | {per['images']:.0f} / {per['segments']:.0f} / {per['segmentations']:.0f} | "
            f"{s['bytes_per_1000_images'] / 2**20:.2f} | {s['bytes'] / 2**20:.2f} MiB "
            f"({s['empty_bytes'] / 2**20:.2f} MiB) | {s['segments_per_image']:.2f} | "
            f"{s['rle_bytes_per_segment']:.0f} |"
        )
    notes = [
        "images/s is each command's own timer (its summary line: the run over the images), best pass; "
        "*each pass* is the ratio within one pass (the sides run back to back, in a rotating order); "
        "*whole process* also counts start-up, imports, the model's metadata and opening (migrating) "
        "the store.",
        "MiB per 1000 images is (measured − empty store) × 1000 / images; SQLite is the .db plus -wal "
        "after `PRAGMA wal_checkpoint(TRUNCATE)`, PostgreSQL `pg_database_size`.",
    ]
    if "postgresql" in r["stored"]:
        notes.append(
            f"PostgreSQL {r['postgres_version']} runs as tests/fixtures/postgres.py starts it: fsync=off, "
            "so its commits are not flushed to disk; SQLite's are (journal_mode=WAL, "
            f"synchronous={r['sqlite_synchronous']} as the store opens it)."
        )
    if r["postgres_skipped"]:
        notes.append(r["postgres_skipped"])
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200, help="generated scenes (default 200)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/output/segment_store"))
    parser.add_argument("--concurrency", "-j", type=int, default=4, help="requests in flight, every side")
    parser.add_argument("--passes", type=int, default=3, help="runs of every side; the best counts")
    parser.add_argument("--imgsz", type=int, help="served input size (default: the checkpoint's)")
    parser.add_argument(
        "--conf",
        type=float,
        default=0.05,
        help="confidence threshold on every command (default 0.05: the demo-trained model scores "
        "low; at its own 0.25 it finds 0.3 of the 2.3 objects a scene holds)",
    )
    parser.add_argument("--weights", type=Path, help="a YOLOv8-seg .pt (default: train one, cached)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="random weights instead of a trained model (then --max-det on every command)",
    )
    parser.add_argument("--max-det", type=int, default=20, help="with --random-weights")
    args = parser.parse_args()
    if args.images < 1 or args.passes < 1:
        parser.error("--images and --passes must be at least 1")
    configure_offline_ultralytics()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    # SIGTERM unwinds like Ctrl-C: the finally blocks stop the clients, tritonserver and PostgreSQL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    try:
        results = measure(args)
    except KeyboardInterrupt:
        sys.exit("interrupted: the clients, tritonserver and PostgreSQL it started are stopped")
    results["wall_s"] = time.perf_counter() - started
    table = render(results)
    results["markdown"] = table
    out = args.out.resolve()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(table)
    print(f"wrote {out / 'results.json'} ({results['wall_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
