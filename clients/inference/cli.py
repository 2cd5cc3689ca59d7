"""``seg-client infer``, ``evaluate`` and ``bench``: send images to a served model, score its
answers against ground truth, and measure it with perf_analyzer."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from clients.failure_log import FailureLog
from clients.options import (
    CONCURRENCY_OPTION,
    DATA_ROOT_OPTION,
    GROUP_OPTION,
    LEASE_OPTION,
    TIMEOUT_OPTION,
    URL_OPTION,
    threshold_options,
)
from clients.triton.client import ClientError, SegmentationClient
from clients.triton.image_sources import (
    DataLayout,
    ImageItem,
    all_badlisted_error,
    empty_group_error,
    images_in_folder,
    images_in_group,
    no_images_error,
    unbadlisted,
)
from clients.triton.replicas import connect
from clients.triton.work_share import shared_work
from segcontract.tasks import Task
from store.badlist import read_badlist
from store.errors import StoreError
from store.layout import database_url, group_index


@click.command()
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of images (searched recursively).",
)
@GROUP_OPTION
@DATA_ROOT_OPTION
@click.option(
    "--model", "--model_name", "model", required=True, help="The served ensemble's name (build-repo --name)."
)
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
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help="The segment store (default: $SEGSTACK_DB, else DATA/segments.db if it exists): --group "
    "leaves out the pictures on its badlist now; --segments reads the segments to classify from it. "
    "Given without --segments, a PostgreSQL store through which several workers writing the same "
    "--out share the images (see --lease).",
)
@LEASE_OPTION
def infer(
    source,
    group,
    data_root,
    model,
    url,
    out,
    conf,
    iou,
    max_det,
    concurrency,
    timeout_s,
    overlay,
    overwrite,
    top_k,
    on_segments,
    segment_model,
    db,
    lease_s,
) -> None:
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
    """
    failures = FailureLog(lambda line: tqdm.write(line, file=sys.stderr))
    try:
        if (source is None) == (group is None):
            raise click.UsageError("give exactly one of --source DIR or --group NAME")
        layout = DataLayout(data_root)
        name = group or Path(source).resolve().name
        out = out or layout.inference / (f"{name}-segments" if on_segments else name)
        items = (
            images_in_folder(source, exclude=out) if source is not None else images_in_group(group, layout)
        )
        if not items:
            if source is not None:
                raise no_images_error(source)
            raise empty_group_error(group, layout, db)
        if group is not None and not on_segments:  # --segments: the store leaves them out itself
            items = _without_badlisted(items, group, layout, db)
        if out.exists() and not out.is_dir():
            raise ClientError(f"--out {out} is a file; give a folder")
        if segment_model is not None and not on_segments:
            raise click.UsageError("--segment-model goes with --segments")
        client = connect(url, timeout_s, on_event=lambda line: tqdm.write(line, file=sys.stderr))
        info = client.model_info(model)
        from clients.inference.run import run_images, settings_not_taken

        given = {"conf": conf, "iou": iou, "max_det": max_det, "overlay": overlay, "top_k": top_k}
        wrong, takes = settings_not_taken(info.task, {**given, "segments": on_segments})
        if wrong:
            flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
            usable = ", ".join("--" + name.replace("_", "-") for name in takes) or "none of them"
            raise ClientError(f"{flags}: {model!r} serves {info.task}, which takes {usable}")

        writer = None
        if on_segments:
            from clients.segments.sources import stored_segments

            items, writer, badlisted = stored_segments(items, layout, db, segment_model, {"top_k": top_k})
            if not items:  # rather than "0 written"
                where = f"group {group!r}" if group is not None else str(source)
                raise all_badlisted_error(where, badlisted, "no segments to classify")
            if badlisted:
                click.echo(f"{badlisted} badlisted images left out", err=True)
        overrides = {"conf": conf, "iou": iou, "max_det": max_det, "top_k": top_k}
        job = (
            "infer", model, str(out.resolve()), str(sorted(overrides.items())), str(overwrite), str(overlay),
            str(on_segments), *sorted(i.relative.as_posix() for i in items),
        )  # fmt: skip
        sharing = shared_work(
            database_url(db, layout) if db is not None else None,
            job,
            lease_s,
            batch=2 * concurrency,
            required=not on_segments and group is None,  # with --group, --db is also the badlist's
        )
        started = time.perf_counter()
        with sharing as share, tqdm(total=len(items), desc=f"{model}", unit="img", file=sys.stderr) as bar:
            summary = run_images(
                client,
                info,
                items,
                out,
                concurrency=concurrency,
                overrides=overrides,
                overwrite=overwrite,
                overlays=overlay,
                on_progress=bar.update,
                on_failure=failures,
                writer=writer,
                share=share,
            )
            if share is not None:  # the job is done: the rest was done by the other workers
                bar.update(bar.total - bar.n)
    except (ClientError, StoreError) as exc:
        _echo_lines(failures.summary())
        click.echo(f"seg-client: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _echo_lines(failures.summary())
        click.echo("seg-client: interrupted; finished images are saved, a re-run resumes", err=True)
        sys.exit(130)
    _echo_lines(failures.summary())
    _echo_lines([line] if (line := client.summary()) else [])
    elapsed = time.perf_counter() - started
    found = {
        Task.INSTANCE: f"{summary.detections} detections",
        Task.SEMANTIC: "masks",
        Task.CLASSIFICATION: f"{summary.detections} segments classified" if on_segments else "classes",
    }[Task(info.task)]
    per_image = f", {1000 * elapsed / summary.written:.1f} ms/image" if summary.written else ""
    click.echo(
        f"{summary.written} written, {summary.skipped} skipped (done before), {len(summary.failed)} failed; "
        f"{found} → {out} (in {elapsed:.1f} s{per_image})"
    )
    if summary.failed:
        click.echo(f"failed images are listed in {out / 'failures.json'}", err=True)
        sys.exit(1)


def _without_badlisted(
    items: list[ImageItem], group: str, layout: DataLayout, db: str | None
) -> list[ImageItem]:
    """A group's images without those on the store's badlist now, whatever the group's CSV says;
    says how many were left out, and refuses a group whose images are all badlisted."""
    kept, badlisted = unbadlisted(items, layout, db)
    if not kept:
        raise all_badlisted_error(f"group {group!r}", badlisted)
    if badlisted:
        click.echo(f"{badlisted} badlisted images left out", err=True)
    return kept


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


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
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help="The segment store whose badlist is read, with --group or when given (only read; default: "
    "$SEGSTACK_DB, else DATA/segments.db if it exists): badlisted images are not scored.",
)
def evaluate(
    annotations: Path | None,
    labels: Path | None,
    split: str | None,
    results: Path | None,
    group: str | None,
    data_root: Path,
    db: str | None,
) -> None:
    """Score seg-client infer's results against the truth.

    Instance results with --annotations: box and mask mAP with pycocotools' COCOeval (images matched
    by their path relative to the folder given to `infer --source`, as coco2yolo writes them,
    categories by class name). Classification results with --labels (with --group alone:
    DATA/datasets/<group>.csv): accuracy, per-class precision and recall, and the confusion matrix
    (of the top class of each image, or of each segment with its image's label). With --group
    (or --db), images on the segment store's badlist now are left out, whatever the CSV or COCO
    file lists.
    """
    try:
        layout = DataLayout(data_root)
        if annotations is not None and labels is not None:
            raise click.UsageError(
                "give one of --annotations COCO.json (instances) or --labels CSV (classification)"
            )
        if annotations is None and labels is None:
            if group is None:
                raise click.UsageError(
                    "give --annotations COCO.json (instances) or --labels CSV (classification), or "
                    "--group NAME for the labels in DATA/datasets/<group>.csv"
                )
            labels = layout.datasets / f"{group}.csv"
            if not labels.is_file():
                raise ClientError(
                    f"{labels}: no such file; --group {group} reads its labels there (`seg-client groups "
                    "pull` writes it), else give --labels CSV or --annotations COCO.json"
                )
        if results is None:
            if group is None:
                raise click.UsageError("give --results DIR, or --group NAME for TEST/inference/<group>")
            results = layout.inference / group
            if not results.is_dir():
                raise ClientError(f"{results}: no results; run `seg-client infer --group {group}` first")
        # a group's images (or a store named): not a COCO file of some other dataset, whose stems
        # could match the badlist's by chance
        badlist = read_badlist(db, layout) if group is not None or db is not None else None
        left_out = (lambda image: badlist.holds(image)) if badlist is not None else (lambda image: False)
        if labels is not None:
            from clients.inference.classify_eval import evaluate_labels, format_scores

            click.echo(format_scores(evaluate_labels(labels, results, split, left_out)))
            return
        from clients.inference.coco_eval import evaluate as coco_evaluate

        scores = coco_evaluate(annotations, results, left_out)
    except (ClientError, StoreError) as exc:
        click.echo(f"seg-client: error: {exc}", err=True)
        sys.exit(2)
    left = f", {scores.badlisted} badlisted images left out" if scores.badlisted else ""
    click.echo(
        f"{scores.images} images ({scores.images_without_results} without results{left}), "
        f"{scores.detections} detections"
    )
    click.echo(f"box  mAP50 {scores.box_map50:.4f}  mAP50-95 {scores.box_map:.4f}")
    click.echo(f"mask mAP50 {scores.mask_map50:.4f}  mAP50-95 {scores.mask_map:.4f}")


@click.command()
@click.option("--model", required=True, help="The served model's name (build-repo --name).")
@click.option("--url", default="127.0.0.1:8001", help="Triton gRPC endpoint HOST:PORT.")
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
def bench(
    model,
    url,
    images,
    group,
    data_root,
    concurrency,
    timeout_s,
    shared_memory,
    windows_of,
    stability,
    model_alone,
    out,
) -> None:
    """Measure a served model with perf_analyzer: throughput, p50/p95/p99 and the server-side
    breakdown per composing model, over a concurrency sweep."""
    from clients.inference.perf import format_results, run_perf_analyzer, write_input_data

    if (images is None) == (group is None):
        raise click.UsageError("give exactly one of --images DIR or --group NAME")
    try:
        if group is not None:  # bench takes --images for a folder, not infer's --source
            group_index(group, DataLayout(data_root), instead="--images DIR for a plain folder")
        client = SegmentationClient(url, timeout_s=timeout_s)
        client.model_info(model)
        items = (
            images_in_folder(images) if images is not None else images_in_group(group, DataLayout(data_root))
        )
        if images is None and items:
            items = _without_badlisted(items, group, DataLayout(data_root), None)
        paths = [i.path for i in items if i.path.is_file()][:64]
        if not paths:
            raise (
                no_images_error(images)
                if images is not None
                else empty_group_error(group, DataLayout(data_root))
                if not items
                else ClientError(f"group {group!r} has no images (none of its {len(items)} files exists)")
            )
        out.mkdir(parents=True, exist_ok=True)
        data = write_input_data(paths, out / "input_data.json")
        per_window = windows_of * len(paths)
        watch = {"health": client.health_problem, "check_every_s": timeout_s}
        results = run_perf_analyzer(
            model, url, out, data, concurrency, shared_memory, per_window, stability, **watch
        )
        click.echo(format_results(model, results))
        if model_alone and f"{model}_model" not in client.served_models():
            click.echo(
                f"{model} is one model (build-repo's python-onnx default): no {model}_model to measure "
                "alone; a build with --ensemble serves the network as a model of its own"
            )
        elif model_alone:
            alone = run_perf_analyzer(
                f"{model}_model", url, out, None, concurrency, shared_memory, per_window, **watch
            )
            click.echo(format_results(f"{model}_model", alone))
    except (ClientError, StoreError) as exc:
        click.echo(f"seg-client: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("seg-client: interrupted; perf_analyzer stopped", err=True)
        sys.exit(130)
    click.echo(f"CSV, JSON and logs in {out}")
