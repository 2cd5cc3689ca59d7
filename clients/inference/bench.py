"""``seg-client bench`` as a library call: the images sent as payloads, then perf_analyzer over
the served model and, where it is a model of its own, over its network alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.inference.infer import without_badlisted
from clients.inference.perf import ConcurrencyResult, run_perf_analyzer, write_input_data
from clients.triton.client import DEFAULT_TIMEOUT_S, ClientError, SegmentationClient
from clients.triton.image_sources import (
    DataLayout,
    empty_group_error,
    images_in_folder,
    images_in_group,
    no_images_error,
)
from clients.triton.replicas import DEFAULT_URL
from store.layout import group_index

MOST_PAYLOADS = 64  # images written into perf_analyzer's input data


@dataclass(frozen=True)
class BenchOptions:
    """The served ``model`` on one server, the images (exactly one of ``images`` and ``group``)
    and how perf_analyzer measures."""

    model: str
    url: str = DEFAULT_URL
    images: Path | None = None
    group: str | None = None
    data_root: Path = Path(".")
    concurrency: str = "1:4"  # perf_analyzer's --concurrency-range
    timeout_s: float = DEFAULT_TIMEOUT_S  # how often the server's health is asked meanwhile
    shared_memory: str = "none"
    windows_of: int = 2  # each measurement window sends every image this many times
    stability: int = 30
    model_alone: bool = True
    out: Path = Path("benchmarks/output/perf")

    def usage_problem(self) -> str | None:
        """What is wrong with the combination of options, before anything is read; None if nothing."""
        if (self.images is None) == (self.group is None):
            return "give exactly one of --images DIR or --group NAME"
        return None


@dataclass(frozen=True)
class BenchReport:
    out: Path
    note: str | None = None  # why the network was not measured alone


def run_bench(
    options: BenchOptions,
    *,
    on_measured: Callable[[str, list[ConcurrencyResult]], None] = lambda model, results: None,
    on_note: Callable[[str], None] = lambda line: None,
) -> BenchReport:
    """Measure ``options.model`` (and ``<model>_model`` alone, where served); ``on_measured`` gets
    each model's results as soon as perf_analyzer is done with it."""
    layout = DataLayout(options.data_root)
    if options.group is not None:  # bench takes --images for a folder, not infer's --source
        group_index(options.group, layout, instead="--images DIR for a plain folder")
    client = SegmentationClient(options.url, timeout_s=options.timeout_s)
    client.model_info(options.model)
    paths = _payloads(options, layout, on_note)
    options.out.mkdir(parents=True, exist_ok=True)
    data = write_input_data(paths, options.out / "input_data.json")
    measure = {
        "url": options.url,
        "out_dir": options.out,
        "concurrency": options.concurrency,
        "shared_memory": options.shared_memory,
        "requests_per_window": options.windows_of * len(paths),
        "health": client.health_problem,
        "check_every_s": options.timeout_s,
    }
    model = options.model
    on_measured(
        model,
        run_perf_analyzer(model, input_data=data, stability_percentage=options.stability, **measure),
    )
    if not options.model_alone:
        return BenchReport(options.out)
    if f"{model}_model" not in client.served_models():
        return BenchReport(
            options.out,
            f"{model} is one model (build-repo's python-onnx default): no {model}_model to measure "
            "alone; a build with --ensemble serves the network as a model of its own",
        )
    # random input of the right shape, at perf_analyzer's default stability: its cost does not vary
    on_measured(f"{model}_model", run_perf_analyzer(f"{model}_model", input_data=None, **measure))
    return BenchReport(options.out)


def _payloads(options: BenchOptions, layout: DataLayout, on_note: Callable[[str], None]) -> list[Path]:
    """The image files sent (at most ``MOST_PAYLOADS``), a group's without its badlisted ones."""
    if options.images is not None:
        items = images_in_folder(options.images)
    else:
        items = images_in_group(options.group, layout)
        if items:
            items = without_badlisted(items, options.group, layout, None, on_note)
    paths = [i.path for i in items if i.path.is_file()][:MOST_PAYLOADS]
    if paths:
        return paths
    if options.images is not None:
        raise no_images_error(options.images)
    if not items:
        raise empty_group_error(options.group, layout)
    raise ClientError(f"group {options.group!r} has no images (none of its {len(items)} files exists)")
