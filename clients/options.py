"""Options every seg-client command spells the same way. ``--db`` and ``--data-root`` are the
store's (``store.cli_options``), shared with seg-train; they are re-exported here."""

from __future__ import annotations

import click

from clients.triton.client import DEFAULT_TIMEOUT_S
from store.cli_options import DATA_ROOT_OPTION, DB_OPTION

TIMEOUT_OPTION = click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT_S,
    metavar="SECONDS",
    help="The longest one request may take. A server that does not answer within it is checked; "
    "a hung or dead one ends the run.",
)

URL_HELP = (
    "Triton gRPC endpoint HOST:PORT. Several replicas: repeat it or separate by commas; each request "
    "goes to the ready one with the fewest in flight, a failing one is skipped (its requests sent "
    "again elsewhere) and re-admitted once ready. dns:///NAME:PORT: every address NAME resolves to "
    "(a Kubernetes headless Service), looked up again every 10 s."
)

URL_OPTION = click.option(
    "--url", "url", multiple=True, default=("127.0.0.1:8001",), metavar="HOST:PORT", help=URL_HELP
)

GROUP_OPTION = click.option(
    "--group", default=None, help="A named group: DATA/datasets/<group>.txt|.csv|/ under --data-root."
)


_THRESHOLDS = [
    click.option(
        "--conf",
        type=click.FloatRange(0, 1),
        default=None,
        help="Confidence threshold (default: the model's).",
    ),
    click.option(
        "--iou", type=click.FloatRange(0, 1), default=None, help="NMS IoU threshold (default: the model's)."
    ),
    click.option(
        "--max-det",
        type=click.IntRange(1),
        default=None,
        help="Maximum detections per image (default: the model's).",
    ),
]


def threshold_options(command):
    """``--conf``, ``--iou`` and ``--max-det``: per-request overrides of the model's defaults."""
    for option in reversed(_THRESHOLDS):
        command = option(command)
    return command


CONCURRENCY_OPTION = click.option(
    "--concurrency", "-j", type=click.IntRange(1, 256), default=4, help="Requests in flight."
)

LEASE_OPTION = click.option(
    "--lease",
    "lease_s",
    type=click.FloatRange(min=1),
    default=60.0,
    metavar="SECONDS",
    help="With a PostgreSQL store, several workers share the run: each claims images in batches "
    "and holds them this long without a heartbeat (renewed while it runs); a killed worker's "
    "images go to the others once it has passed.",
)

__all__ = [
    "CONCURRENCY_OPTION",
    "DATA_ROOT_OPTION",
    "DB_OPTION",
    "GROUP_OPTION",
    "LEASE_OPTION",
    "TIMEOUT_OPTION",
    "URL_OPTION",
    "threshold_options",
]
