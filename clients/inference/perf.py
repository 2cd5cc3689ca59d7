"""perf_analyzer against a served model, with real image payloads.

perf_analyzer sends ``--input-data`` for a TYPE_STRING input as the serialised tensor, so each
encoded file is written as Triton's BYTES element: a 4-byte little-endian length, then the bytes.
Its CSV gives the client-side figures per concurrency; the per-composing-model breakdown of an
ensemble only appears in its text output, which is parsed here too.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import struct
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clients.triton.client import ClientError, ServerStopped
from segcontract import tool_locations

COMPOSING = re.compile(
    r"^\s+(?P<model>\S+), version: \S+\n(?:.*\n)*?\s+Avg request latency: (?P<total>\d+) usec "
    r"\(overhead (?P<overhead>\d+) usec \+ queue (?P<queue>\d+) usec \+ compute input (?P<input>\d+) usec "
    r"\+ compute infer (?P<infer>\d+) usec \+ compute output (?P<output>\d+) usec\)",
    re.MULTILINE,
)


@dataclass
class ConcurrencyResult:
    concurrency: int
    throughput: float  # inferences per second
    avg_latency_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_queue_ms: float
    server_compute_ms: float
    composing: dict[str, dict[str, float]] = field(default_factory=dict)  # model → stage → ms


def perf_analyzer_command() -> tuple[Path, dict[str, str]]:
    exe = tool_locations.perf_analyzer_binary()
    if not tool_locations.perf_analyzer_installed():
        raise ClientError(
            f"perf_analyzer is not installed ({exe}); run `python -m serving.perf_analyzer_install`"
        )
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(tool_locations.perf_analyzer_lib_dir()), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return exe, env


def write_input_data(images: list[Path], path: Path, input_name: str = "IMAGE") -> Path:
    def element(data: bytes) -> str:
        return base64.b64encode(struct.pack("<I", len(data)) + data).decode()

    try:
        steps = [{input_name: {"b64": element(p.read_bytes()), "shape": [1]}} for p in images]
    except OSError as exc:
        raise ClientError(f"{exc.filename}: cannot read: {exc.strerror or exc}") from None
    path.write_text(json.dumps({"data": steps}))
    return path


def parse_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def split_by_concurrency(text: str) -> dict[int, str]:
    parts = re.split(r"^Request concurrency: (\d+)$", text, flags=re.MULTILINE)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def parse_composing(block: str) -> dict[str, dict[str, float]]:
    if "Composing models:" not in block:
        return {}
    section = block.split("Composing models:", 1)[1]
    return {
        m["model"]: {k: int(m[k]) / 1000 for k in ("total", "queue", "input", "infer", "output")}
        for m in COMPOSING.finditer(section)
    }


def run_perf_analyzer(
    model: str,
    url: str,
    out_dir: Path,
    input_data: Path | None = None,
    concurrency: str = "1:4",
    *,
    shared_memory: str = "none",
    requests_per_window: int = 16,
    stability_percentage: int = 30,
    output_shm_bytes: int = 64 << 20,
    health: Callable[[], str | None] | None = None,
    check_every_s: float = 10.0,
) -> list[ConcurrencyResult]:
    """Real images differ in cost (a crowded image has more masks): windows of a fixed request count
    that is a multiple of the image count see every image equally often, and the stability criterion
    is looser than perf_analyzer's 10 % default. Outputs vary in size, so their shared-memory regions
    are sized for the worst case rather than the 100 kB default.

    perf_analyzer has no request timeout: every ``check_every_s`` the server's ``health`` (a
    phrase when something is wrong) is asked, and perf_analyzer is stopped when it is gone."""
    exe, env = perf_analyzer_command()
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"perf_{model}.csv"
    cmd = [
        str(exe), "-m", model, "-u", url, "-i", "grpc",
        "--concurrency-range", concurrency,
        "--measurement-mode", "count_windows",
        "--measurement-request-count", str(requests_per_window),
        "--shared-memory", shared_memory,
        "--stability-percentage", str(stability_percentage),
        "--max-trials", "20",
        "-f", str(csv_path), "--verbose-csv",
    ]  # fmt: skip
    if shared_memory != "none":
        cmd += ["--output-shared-memory-size", str(output_shm_bytes)]
    if input_data is not None:
        cmd += ["--input-data", str(input_data)]
    proc = _run_watched(cmd, env, url, health, check_every_s)
    log = out_dir / f"perf_{model}.log"
    log.write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
    _refuse_failed_run(model, proc, csv_path, log)
    results = parse_results(csv_path, proc.stdout)
    (out_dir / f"perf_{model}.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return results


def _refuse_failed_run(model: str, proc: subprocess.CompletedProcess, csv_path: Path, log: Path) -> None:
    """A ClientError when perf_analyzer failed, or could not stabilise some concurrency level."""
    if proc.returncode != 0 or not csv_path.exists():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ClientError(f"perf_analyzer failed on {model}: {tail[0]} (full log: {log})")
    unstable = re.findall(
        r"Failed to obtain stable measurement within \d+ measurement windows for concurrency (\d+)",
        proc.stdout + proc.stderr,
    )
    if unstable:
        levels = ", ".join(unstable)
        raise ClientError(
            f"perf_analyzer could not stabilise {model} at concurrency {levels}: images differ too much in "
            "cost for these windows; raise --windows-of or --stability"
        )


def parse_results(csv_path: Path, stdout: str) -> list[ConcurrencyResult]:
    """One result per concurrency level: the CSV's client-side figures, and the per-composing-model
    breakdown from the text output."""
    blocks = split_by_concurrency(stdout)
    results = []
    for row in parse_csv(csv_path):
        c = int(row["Concurrency"])
        server_compute = sum(
            float(row[k]) for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output")
        )
        results.append(
            ConcurrencyResult(
                concurrency=c,
                throughput=float(row["Inferences/Second"]),
                avg_latency_ms=float(row["Avg latency"]) / 1000,
                p50_ms=float(row["p50 latency"]) / 1000,
                p95_ms=float(row["p95 latency"]) / 1000,
                p99_ms=float(row["p99 latency"]) / 1000,
                server_queue_ms=float(row["Server Queue"]) / 1000,
                server_compute_ms=server_compute / 1000,
                composing=parse_composing(blocks.get(c, "")),
            )
        )
    return results


def _run_watched(
    cmd: list[str],
    env: dict[str, str],
    url: str,
    health: Callable[[], str | None] | None,
    check_every_s: float,
) -> subprocess.CompletedProcess:
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            while True:
                try:
                    stdout, stderr = proc.communicate(timeout=check_every_s)
                    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
                except subprocess.TimeoutExpired:
                    problem = health() if health is not None else None
                    if problem is not None:
                        raise ServerStopped(f"Triton at {url} {problem}; perf_analyzer stopped") from None
        except BaseException:  # Ctrl-C too: perf_analyzer must not outlive seg-client
            proc.kill()
            raise


def format_results(model: str, results: list[ConcurrencyResult]) -> str:
    lines = [f"{model}: {'conc':>4} {'infer/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'queue ms':>9}"]
    for r in results:
        lines.append(
            f"{'':{len(model)}}  {r.concurrency:>4} {r.throughput:>8.2f} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.server_queue_ms:>9.1f}"
        )
        for name, stages in r.composing.items():
            lines.append(
                f"{'':{len(model)}}       {name}: queue {stages['queue']:.1f} ms, compute "
                f"{stages['input'] + stages['infer'] + stages['output']:.1f} ms"
            )
    return "\n".join(lines)
