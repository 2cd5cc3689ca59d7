"""Options every seg-client command spells the same way, each declared once with one help text.
``--db`` and ``--data-root`` are the store's (``store.cli_options``), shared with seg-train; they
are re-exported here.

Where a command's flag of the same name means something else (``groups pull --timeout`` is an
HTTP timeout, ``bench --concurrency`` a perf_analyzer range), that command declares its own, and
its help says what it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from clients.triton.client import DEFAULT_TIMEOUT_S
from clients.triton.replicas import DEFAULT_URL
from clients.triton.work_share import DEFAULT_LEASE_S
from store.cli_options import DATA_ROOT_OPTION, DB_OPTION

F = TypeVar("F", bound=Callable)

MODEL_OPTION = click.option(
    "--model",
    "--model_name",
    "model",
    required=True,
    metavar="NAME",
    help="The served model's name (build-repo --name): the ensemble, or the one model standing for it.",
)

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
    "--url", "urls", multiple=True, default=(DEFAULT_URL,), metavar="HOST:PORT", help=URL_HELP
)

# meta build: the same servers, by default the configuration file's
CONFIGURED_URL_OPTION = click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="HOST:PORT",
    help=f"{URL_HELP} [the config's triton.url, else {DEFAULT_URL}]",
)


def _one_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if "," in value:
        raise click.BadParameter(
            f"{value!r}: bench measures one server; give one HOST:PORT (measure replicas one at a time)",
            ctx,
            param,
        )
    return value


# bench: perf_analyzer drives one endpoint, so there are no replicas to spread over
ONE_URL_OPTION = click.option(
    "--url",
    default=DEFAULT_URL,
    metavar="HOST:PORT",
    callback=_one_url,
    help="Triton gRPC endpoint HOST:PORT of the one server perf_analyzer measures.",
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


def threshold_options(command: F) -> F:
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
    default=DEFAULT_LEASE_S,
    metavar="SECONDS",
    help="With a PostgreSQL store, several workers share the run: each claims images in batches "
    "and holds them this long without a heartbeat (renewed while it runs); a killed worker's "
    "images go to the others once it has passed.",
)

__all__ = [
    "CONCURRENCY_OPTION",
    "CONFIGURED_URL_OPTION",
    "DATA_ROOT_OPTION",
    "DB_OPTION",
    "GROUP_OPTION",
    "LEASE_OPTION",
    "MODEL_OPTION",
    "ONE_URL_OPTION",
    "TIMEOUT_OPTION",
    "URL_HELP",
    "URL_OPTION",
    "threshold_options",
]
