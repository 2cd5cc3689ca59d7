"""``seg-client infer``, ``evaluate`` and ``bench``: send images to a served model, score its
answers against ground truth, and measure it with perf_analyzer. Each command reads its options
into a frozen dataclass and calls one library function (``clients.inference.infer``,
``.evaluation``, ``.bench``); what is printed, and the exit status, are decided here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from clients.failure_log import FailureLog
from clients.options import (
    CONCURRENCY_OPTION,
    DATA_ROOT_OPTION,
    DB_OPTION,
    GROUP_OPTION,
    LEASE_OPTION,
    MODEL_OPTION,
    ONE_URL_OPTION,
    TIMEOUT_OPTION,
    URL_OPTION,
    threshold_options,
)
from clients.triton.progress import above_bars, progress_bar
from segcontract.errors import SegstackError


@contextmanager
def _one_line_errors(interrupted: str | None, before: Callable[[], list[str]] = list) -> Iterator[None]:
    """A user's mistake or an unusable server or store: one line, exit 2; Ctrl-C (where
    ``interrupted`` says what is left of the run): one line, exit 130. The lines of ``before``
    (the failures not shown one by one) come first."""
    try:
        yield
    except SegstackError:
        _echo_lines(before())  # then seg-client's handler prints the error's one line
        raise
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        _echo_lines(before())
        click.echo(f"seg-client: interrupted; {interrupted}", err=True)
        sys.exit(130)


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


@click.command()
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of images (searched recursively).",
)
@GROUP_OPTION
@DATA_ROOT_OPTION
@MODEL_OPTION
@URL_OPTION
@click.option(
    "--out",
    "--output",
    "out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder. Default: TEST/inference/<group or source folder name> under --data-root.",
)
@threshold_options
@CONCURRENCY_OPTION
@TIMEOUT_OPTION
@click.option("--overlay", is_flag=True, help="Also write <out>/overlays/<image>.jpg for people to look at.")
@click.option("--overwrite", is_flag=True, help="Redo images whose JSON already exists (default: skip them).")
@click.option(
    "--top-k",
    "top_k",
    type=click.IntRange(1),
    default=None,
    help="Classification models: how many classes per image (or segment), best first (default 5).",
)
@click.option(
    "--segments",
    "on_segments",
    is_flag=True,
    help="Classification models: classify each approved segment of the images in the segment store "
    "(cropped by the server as training cropped it) instead of the whole image.",
)
@click.option(
    "--segment-model",
    default=None,
    help="With --segments: whose segments (the instance model's served name; default: the store's only one).",
)
@DB_OPTION
@LEASE_OPTION
def infer(**given: Any) -> None:
    """Run a served model over a folder or a group; write one JSON per image.

    Instance models: <out>/<image stem>.json holds the boxes (original pixels), scores, classes and
    COCO RLE masks. Semantic models: <stem>.png (class index per pixel), <stem>_color.png and
    <stem>.json (pixel fraction per class). Classification models: <stem>.json holds the --top-k
    classes with their scores, for the whole image or, with --segments, for each approved segment
    in the segment store (outputs then default to TEST/inference/<name>-segments).
    Failed images are reported (and listed in <out>/failures.json); the rest go on. A re-run skips
    images already done (a classifier's unless --top-k or the approved segments changed). A
    server that hangs or goes away stops the run within about two --timeout; so does Ctrl-C, at
    once.

    The segment store (--db, else $SEGSTACK_DB, else DATA/segments.db if it exists): --group
    leaves out the pictures on its badlist now; --segments reads the segments to classify from
    it. A PostgreSQL store given without --segments is the one through which several workers
    writing the same --out share the images (see --lease).
    """
    from clients.inference.infer import InferOptions, run_infer

    options = InferOptions(**given)
    if problem := options.usage_problem():
        raise click.UsageError(problem)
    failures = FailureLog(above_bars)
    with _one_line_errors("finished images are saved, a re-run resumes", failures.summary):
        report = run_infer(options, progress=progress_bar, on_note=above_bars, on_failure=failures)
    _echo_lines(failures.summary())
    _echo_lines([report.servers] if report.servers else [])
    click.echo(report.line())
    if report.summary.failed:
        from clients.inference.run import FAILURES_FILE

        click.echo(f"failed images are listed in {report.out / FAILURES_FILE}", err=True)
        sys.exit(1)


@click.command()
@click.option(
    "--annotations",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instance results: COCO ground truth (e.g. annotations/val.json that seg-train coco2yolo writes).",
)
@click.option(
    "--labels",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Classification results: a CSV with image,label columns (default with --group and no "
    "--annotations: DATA/datasets/<group>.csv).",
)
@click.option(
    "--split", default=None, help="With --labels: score only the CSV rows of this split (e.g. val)."
)
@click.option(
    "--results",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The --out folder of seg-client infer (default with --group: TEST/inference/<group>).",
)
@GROUP_OPTION
@DATA_ROOT_OPTION
@DB_OPTION
def evaluate(**given: Any) -> None:
    """Score seg-client infer's results against the truth.

    Instance results with --annotations: box and mask mAP with pycocotools' COCOeval (images matched
    by their path relative to the folder given to `infer --source`, as coco2yolo writes them,
    categories by class name). Classification results with --labels (with --group alone:
    DATA/datasets/<group>.csv): accuracy, per-class precision and recall, and the confusion matrix
    (of the top class of each image, or of each segment with its image's label). With --group
    (or --db), images on the segment store's badlist now are left out, whatever the CSV or COCO
    file lists; the store is only read.
    """
    from clients.inference.evaluation import EvaluateOptions, evaluate_results, format_report

    options = EvaluateOptions(**given)
    if problem := options.usage_problem():
        raise click.UsageError(problem)
    with _one_line_errors(interrupted=None):
        scores = evaluate_results(options)
    click.echo(format_report(scores))


@click.command()
@MODEL_OPTION
@ONE_URL_OPTION
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of images sent as the ensemble's IMAGE payloads (encoded files, as seg-client sends).",
)
@GROUP_OPTION
@DATA_ROOT_OPTION
@click.option("--concurrency", default="1:4", help="perf_analyzer --concurrency-range START:END[:STEP].")
@TIMEOUT_OPTION
@click.option(
    "--shared-memory",
    type=click.Choice(["none", "system"]),
    default="none",
    help="Pass tensors through system shared memory (client and server on one host).",
)
@click.option(
    "--windows-of",
    "windows_of",
    type=click.IntRange(1),
    default=2,
    help="Each measurement window sends every image this many times (perf_analyzer count windows).",
)
@click.option(
    "--stability",
    type=click.IntRange(1, 100),
    default=30,
    help="perf_analyzer --stability-percentage: how much windows may differ to count as stable.",
)
@click.option(
    "--model-alone/--no-model-alone",
    default=True,
    help="Also measure <model>_model alone (random input of the right shape): the network's own cost "
    "(where the network is served as a model of its own: an ensemble's).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/output/perf"),
    help="Where perf_analyzer's CSV, log and the parsed JSON go.",
)
def bench(**given: Any) -> None:
    """Measure a served model with perf_analyzer: throughput, p50/p95/p99 and the server-side
    breakdown per composing model, over a concurrency sweep."""
    from clients.inference.bench import BenchOptions, run_bench
    from clients.inference.perf import format_results

    options = BenchOptions(**given)
    if problem := options.usage_problem():
        raise click.UsageError(problem)
    with _one_line_errors("perf_analyzer stopped"):
        report = run_bench(
            options,
            on_measured=lambda model, results: click.echo(format_results(model, results)),
            on_note=lambda line: click.echo(line, err=True),
        )
    if report.note:
        click.echo(report.note)
    click.echo(f"CSV, JSON and logs in {report.out}")
