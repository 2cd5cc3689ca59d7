"""``build-repo tune``: a bounded search for the serving settings that get the most images through
a built python-onnx repository on this machine, in the spirit of Triton Model Analyzer's quick mode
but over the whole served model (an ensemble too) and in minutes.

Each trial serves a copy of the repository (model files hard-linked, configs changed) with
``seg-serve`` and measures it with ``seg-client bench`` (perf_analyzer, the user's images as
payloads) at one concurrency; both are run as commands, so this package imports neither. The
search starts from the repository's own setting and varies one thing at a time, keeping a change
only when it is clearly faster (``MIN_GAIN``): the network's runtime and precision (OpenVINO FP32,
and INT8 with calibration images: builder.tune_runtimes makes their files once per run), then
instances, the network's threads, the largest batch, the queue delay. It stops starting trials
once the next would overrun the budget (making a network's files counts against it).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builder import triton_config
from builder.errors import BuildError
from builder.tune_runtimes import NETWORKS, NetworkFiles, Networks, link_or_copy
from builder.tune_settings import ServedModel, Setting
from segcontract.files import write_atomic
from segops.cpu_cores import cores_seen, threads_per_instance

MIN_GAIN = 1.03  # a change must beat the best so far by 3 %: these machines are noisy
SERVER_READY_S = 300.0
BIN = Path(sys.executable).parent


@dataclass
class Trial:
    setting: Setting
    throughput: float = 0.0  # inferences (images) per second
    p95_ms: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            **self.setting.to_dict(),
            "throughput": self.throughput,
            "p95_ms": self.p95_ms,
            "seconds": self.seconds,
            "error": self.error,
        }


@dataclass
class TuneResult:
    start: Trial
    best: Trial
    trials: list[Trial]
    concurrency: int
    stopped_by_budget: bool
    notes: list[str] = field(default_factory=list)  # what was not tried, and why


def runtimes(best: Setting, cores: int) -> list[Setting]:
    """The network on each other runtime and precision (those the run cannot make are not tried)."""
    return [best.but(runtime=r, precision=p) for r, p in NETWORKS if (r, p) != best.network]


def instances(best: Setting, cores: int) -> list[Setting]:
    return [best.but(instances=n) for n in sorted({1, 2, 4, min(max(cores, 1), 8)})]


def threads(best: Setting, cores: int) -> list[Setting]:
    """Shared, every core each, one each: those that come to the same count on these cores (one
    each is the share when instances fill the cores) are one setting, measured once."""
    share = threads_per_instance(best.instances, cores)
    counts = {None: share, 0: cores, 1: 1}
    return [best.but(threads=t) for t in counts if t is None or counts[t] != share]


def batch_sizes(best: Setting, cores: int) -> list[Setting]:
    return [best.but(max_batch_size=b) for b in sorted({1, best.max_batch_size})]


def queue_delays(best: Setting, cores: int) -> list[Setting]:
    if best.max_batch_size == 1:
        return []  # nothing to wait for
    return [best.but(max_queue_delay_us=d) for d in (0, 1000, 5000)]


# in this order, each from the best so far
STAGES = (runtimes, instances, threads, batch_sizes, queue_delays)
Measure = Callable[[Path, ServedModel, Setting, Path, int, NetworkFiles | None], Trial]


def search(
    repository: Path,
    served: ServedModel,
    images: Path,
    concurrency: int = 4,
    budget_s: float = 300.0,
    progress: Callable[[str], None] = lambda line: None,
    measure: Measure | None = None,
    cores: int | None = None,
    networks: Networks | None = None,
) -> TuneResult:
    """Measure the repository's setting, then its variations, within ``budget_s`` seconds.
    ``cores``: those the server will see (default: this process's, as seg-serve runs here);
    ``networks``: the files of the other runtimes and precisions (None: only the repository's own)."""
    measure = measure or measure_setting
    started = time.monotonic()
    trials: dict[Setting, Trial] = {}
    unmade: set[Setting] = set()  # failed making their network's files: not a trial's time
    own = served.current().network
    notes = list(networks.notes) if networks else []

    def offered(network: tuple[str, str]) -> bool:
        return networks.offers(network) if networks else network == own

    def trial(setting: Setting) -> Trial:
        if setting not in trials:
            progress(f"trying {setting.label()}")
            began = time.monotonic()
            try:
                network = networks.files(setting.network) if networks else None
            except BuildError as exc:
                unmade.add(setting)
                result = Trial(setting, seconds=time.monotonic() - began, error=str(exc))
            else:
                result = measure(repository, served, setting, images, concurrency, network)
            trials[setting] = result
            shown = result.error or f"{result.throughput:.2f} images/s, p95 {result.p95_ms:.0f} ms"
            progress(f"  {shown} ({result.seconds:.0f} s)")
        return trials[setting]

    start = trial(served.current())
    if start.error is not None:
        raise BuildError(f"the repository as it is does not serve: {start.error}")
    best, over_budget = start, False
    cores = cores if cores is not None else cores_seen()
    for stage in STAGES:
        for setting in stage(best.setting, cores):
            if setting not in trials:
                if not offered(setting.network):
                    continue
                slowest = max(t.seconds for s, t in trials.items() if s not in unmade)
                left = budget_s - (time.monotonic() - started) - slowest
                if left < 0:
                    over_budget = True
                    break
                making = networks.making_s(setting.network) if networks else 0.0
                if making > left:  # not this network; the later stages' trials may still fit
                    notes.append(
                        f"{setting.runtime} {setting.precision.upper()} not tried: making its network "
                        f"(about {making:.0f} s) does not fit the budget"
                    )
                    continue
            result = trial(setting)
            if result.error is None and result.throughput > best.throughput * MIN_GAIN:
                best = result
        if over_budget:
            break
    return TuneResult(start, best, list(trials.values()), concurrency, over_budget, notes)


def measure_setting(
    repository: Path,
    served: ServedModel,
    setting: Setting,
    images: Path,
    concurrency: int,
    network: NetworkFiles | None = None,
) -> Trial:
    """Serve a copy of the repository with ``setting`` (and ``network``'s files in its network
    folder) and measure it; a setting that does not load or serve is a failed trial, not an error
    of the search."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-repo-tune-") as tmp:
        copy = Path(tmp) / "repository"
        for folder, config in served.with_setting(setting).items():
            shutil.copytree(repository / folder, copy / folder, copy_function=link_or_copy)
            (copy / folder / "config.pbtxt").unlink()
            triton_config.write(config, copy / folder)
            if network is not None and folder == served.network.name:
                network.link_into(copy / folder)
        try:
            with _served(copy, Path(tmp) / "tritonserver.log") as url:
                throughput, p95 = _bench(url, served.name, images, concurrency, Path(tmp) / "perf")
        except TrialFailed as exc:
            return Trial(setting, seconds=time.monotonic() - began, error=str(exc))
    return Trial(setting, throughput, p95, time.monotonic() - began)


class TrialFailed(Exception):
    pass


class _served:
    """``seg-serve`` on free ports for the copy; its gRPC address while it runs, stopped by PID."""

    def __init__(self, repository: Path, log: Path):
        self.command = [_tool("seg-serve"), "--model-repository", str(repository), "--grpc-port", "0",
                        "--http-port", "0", "--metrics-port", "0", "--log-file", str(log)]  # fmt: skip

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        deadline = time.monotonic() + SERVER_READY_S
        lines = []
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            lines.append(line.strip())
            if found := re.search(r"ready\. gRPC (\S+)", line):
                # what it says from now on is read and dropped, so a full pipe never stalls it
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return found.group(1)
        self.__exit__()
        raise TrialFailed(f"the server did not become ready: {(lines or ['no output'])[-1]}")

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _bench(url: str, name: str, images: Path, concurrency: int, out: Path) -> tuple[float, float]:
    """(images/s, p95 ms) from ``seg-client bench`` at one concurrency."""
    level = f"{concurrency}:{concurrency}"
    command = [_tool("seg-client"), "bench", "--model", name, "--url", url, "--images", str(images),
               "--concurrency", level, "--no-model-alone", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    results = out / f"perf_{name}.json"
    if proc.returncode != 0 or not results.is_file():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise TrialFailed(f"seg-client bench failed: {(lines or ['no output'])[-1]}")
    (row,) = json.loads(results.read_text())
    return float(row["throughput"]), float(row["p95_ms"])


def _tool(name: str) -> str:
    """A console script of this installation (beside the running Python), else on PATH."""
    here = BIN / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise BuildError(f"{name} is not installed here; pip install segstack")
    return found


def report(result: TuneResult) -> str:
    """The table of what was tried, best first, as Markdown."""
    rows = sorted(result.trials, key=lambda t: (t.error is not None, -t.throughput))
    lines = [
        f"| setting | images/s at {result.concurrency} in flight | p95 ms | vs the repository's own |",
        "|---|---|---|---|",
    ]
    for t in rows:
        mark = (
            " **(chosen)**" if t is result.best else (" (the repository's own)" if t is result.start else "")
        )
        if t.error is not None:
            lines.append(f"| {t.setting.label()}{mark} | failed: {t.error} | | |")
            continue
        ratio = t.throughput / result.start.throughput
        lines.append(f"| {t.setting.label()}{mark} | {t.throughput:.2f} | {t.p95_ms:.0f} | {ratio:.2f} × |")
    lines += ["", *(f"- {note}" for note in result.notes)] if result.notes else []
    return "\n".join(lines) + "\n"


def save(
    repository: Path, served: ServedModel, result: TuneResult, apply: bool, networks: Networks | None = None
) -> list[Path]:
    """tune.md and tune.json into the served model's folder; with ``apply``, the winner into the
    configs, and its network's files (another runtime or precision than the repository's) into
    the network's folder before them, each file replaced atomically."""
    folder = repository / served.name
    record = {
        "concurrency": result.concurrency,
        "chosen": result.best.setting.to_dict(),
        "applied": apply,
        "stopped_by_budget": result.stopped_by_budget,
        "notes": result.notes,
        "trials": [t.to_dict() for t in result.trials],
    }
    write_atomic(folder / "tune.json", json.dumps(record, indent=1).encode())
    write_atomic(folder / "tune.md", report(result).encode())
    if not apply:
        return []
    best = result.best.setting
    network = (
        networks.files(best.network) if networks and best.network != result.start.setting.network else None
    )
    if network is None:
        return served.write(repository, best)
    installed = network.install(repository / served.network.name)
    return installed + served.write(repository, best, network.record)
