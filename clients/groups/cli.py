"""``seg-client groups``: named groups of images under DATA/ (``groups pull`` fetches one)."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from clients.failure_log import FailureLog
from clients.groups.download import (
    DEADLINE_FACTOR,
    DEFAULT_MAX_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_WAIT_S,
    DEFAULT_TIMEOUT_S,
    MIN_DEADLINE_BASE_S,
    FetchSettings,
)
from clients.groups.pull import PullSummary
from clients.options import DATA_ROOT_OPTION, DB_OPTION
from clients.triton.progress import above_bars, progress_bar
from segcontract.errors import SegstackError
from segcontract.limits import DEFAULT_MAX_PIXELS

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class ByteSize(click.ParamType):
    """A number of bytes: ``1048576``, ``512K``, ``256M``, ``1G`` (binary units; a trailing
    ``B``/``iB`` is allowed)."""

    name = "BYTES"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*", str(value), re.IGNORECASE)
        if match is None or float(match[1]) * _UNITS[match[2].lower()] < 1:
            self.fail(f"{value!r} is not a size (e.g. 268435456, 512K, 256M, 1G)", param, ctx)
        return int(float(match[1]) * _UNITS[match[2].lower()])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def groups() -> None:
    """Named groups of images under DATA/ (DATA/datasets/<group>.csv), as `infer --group` reads them."""


@groups.command()
@click.option(
    "--group",
    required=True,
    help="The group's name: the images are listed in DATA/datasets/<group>.csv.",
)
@click.option(
    "--manifest",
    "--json-path",
    "--json_path",
    "manifest",
    required=True,
    metavar="URL|PATH",
    help='The images: a JSON list of objects (or {"images": [...]}) or a CSV with a header row; '
    "a path or an http(s) URL. Fields: url (required: http(s)://, file:// or a path, relative to "
    "the manifest), id (default: the URL's file stem), sha256, label; others are kept in the meta. "
    "Messages and failures.json show URLs without user name, password or query values "
    "(https://***@host/a.jpg?token=***); the meta's url keeps the query, never the user name and password.",
)
@DATA_ROOT_OPTION
@click.option(
    "--concurrency",
    "-j",
    type=click.IntRange(1, 256),
    default=8,
    help="Images fetched at once (threads sharing one HTTP client).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    metavar="SECONDS",
    help="HTTP: the longest wait for an image's (or the manifest's) server to accept a connection "
    "or send the next bytes.",
)
@click.option(
    "--deadline",
    "deadline_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help=f"The longest one attempt at a URL may take, connecting to the last byte (default: "
    f"{DEADLINE_FACTOR} × the larger of --timeout and {MIN_DEADLINE_BASE_S:g} s). Past it the attempt "
    "fails as a timeout and is retried: a server trickling bytes is cut off.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=DEFAULT_RETRIES,
    help="Further attempts after a timeout, a dropped or refused connection, a truncated body, "
    "HTTP 5xx or 429, with exponential backoff. Other 4xx answers are not retried.",
)
@click.option(
    "--retry-wait",
    "retry_wait_s",
    type=click.FloatRange(min=0),
    default=DEFAULT_RETRY_WAIT_S,
    metavar="SECONDS",
    help="The first wait between attempts; it doubles each time (with jitter, 8 s at most). A "
    "Retry-After header is honoured up to 5 s.",
)
@click.option(
    "--max-bytes",
    type=ByteSize(),
    default=f"{DEFAULT_MAX_BYTES // 1024**2}M",
    help="The largest image accepted; reading stops past it and the image fails (e.g. 64M).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    help="The largest image (width × height) accepted, read from its header before anything is "
    "decoded; a larger one fails. The default holds a 61 MP camera's full frame.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Take over the pictures that other groups hold under the same id with other content "
    "(their CSVs keep naming the file until they are pulled again). Without it such rows fail.",
)
@click.option(
    "--allow-local-files",
    is_flag=True,
    help="Read the local paths and file:// URLs that a manifest fetched over http(s) names. "
    "Without it such rows fail (one line each): a remote manifest cannot copy this machine's files "
    "into DATA/. A local manifest's paths are always read.",
)
@DB_OPTION
def pull(
    timeout_s: float,
    deadline_s: float | None,
    retries: int,
    retry_wait_s: float,
    max_bytes: int,
    max_pixels: int,
    **given: Any,
) -> None:
    """Fetch a group's images from a manifest into DATA/ and list them in DATA/datasets/<group>.csv.

    Writes DATA/pictures/<id><ext>, DATA/meta/<id>.json (the manifest's fields plus sha256, size,
    width, height, url, picture and groups) and DATA/datasets/<group>.csv (image,label: the images
    present, in manifest order). Each image is checked before it lands: complete, a decodable
    image within --max-pixels, and the manifest's sha256 when it gives one; a failed image leaves
    what was there untouched, is
    reported, and the others go on (exit 1; they are listed in
    DATA/meta/groups/<group>.failures.json). A re-run fetches only what is missing or changed; so
    does one after Ctrl-C. A bad manifest writes nothing (exit 2). Images on the segment store's
    badlist (--db, only read; `segments badlist push`) are fetched but left out of the dataset.

    Ids are shared by all groups: a row whose id is another group's picture joins it when the
    content is the same (same sha256, or same URL), and fails when it differs unless --replace.
    Several pulls may run at once on one data root: each id is pulled under a lock of its own.

    A manifest fetched over http(s) may name only http(s) images (see --allow-local-files);
    redirects are followed to http(s) URLs only.

    The successor of load_group.py --group NAME and load_json.py --json_path FILE.
    """
    from clients.groups.pull_run import PullOptions, run_pull

    fetch = FetchSettings(
        timeout_s=timeout_s,
        retries=retries,
        retry_wait_s=retry_wait_s,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        deadline_s=deadline_s,
    )
    options = PullOptions(fetch=fetch, **given)
    failures = FailureLog(above_bars)
    try:
        summary = run_pull(
            options,
            progress=progress_bar,
            on_note=lambda line: click.echo(line, err=True),
            on_failure=failures,
        )
    except SegstackError:
        _echo_lines(failures.summary())  # then seg-client's handler prints the error's one line
        raise
    except KeyboardInterrupt:
        _echo_lines(failures.summary())
        click.echo(
            f"seg-client: interrupted; the images fetched so far are kept, a re-run of groups pull "
            f"resumes (DATA/datasets/{options.group}.csv is written when a run completes)",
            err=True,
        )
        sys.exit(130)
    _echo_lines(failures.summary())
    click.echo(_summary_line(summary))
    if summary.failed:
        click.echo(f"seg-client: failed images are listed in {summary.failures_file}", err=True)
        sys.exit(1)


def _summary_line(summary: PullSummary) -> str:
    left_out = f", {summary.excluded} left out" if summary.excluded else ""
    return (
        f"{summary.downloaded} downloaded, {summary.present} already present, {len(summary.failed)} failed "
        f"→ {summary.dataset} ({summary.listed} images listed{left_out})"
    )


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


if __name__ == "__main__":  # python -m clients.groups.cli pull ...: seg-client groups pull ...
    from clients.cli import main

    main(["groups", *sys.argv[1:]], prog_name="seg-client")
