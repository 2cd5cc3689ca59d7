"""``seg-review serve``: the review page on a group of the segment store."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

import click

from review.access import Access, AccessError, is_loopback, session_secret, token_from_env
from review.doubt import Order, read_classifier_margins
from segcontract.errors import DEBUG_HELP, SegstackError, reported
from segcontract.limits import DEFAULT_CONF
from store.cli_options import DATA_ROOT_OPTION, DB_OPTION
from store.layout import DataLayout, database_url

PROG = "seg-review"
DEBUG = "segstack.debug"


class ServeError(SegstackError):
    """The page cannot be served as asked (no such group, the port taken)."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        with reported(PROG, debug=ctx.meta.get(DEBUG, False)):
            return super().invoke(ctx)


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[DEBUG] = value or ctx.meta.get(DEBUG, False)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, is_eager=True, help=DEBUG_HELP)
def main() -> None:
    """Review stored segments in the browser: approve or reject at a glance, the doubtful first."""


@main.command()
@click.option("--group", required=True, help="The group whose segments are reviewed.")
@DB_OPTION
@DATA_ROOT_OPTION
@click.option("--host", default="127.0.0.1", help="Address to listen on; off loopback needs --token-env.")
@click.option("--port", type=click.IntRange(0, 65535), default=8090, help="Port (0: pick a free one).")
@click.option(
    "--order",
    type=click.Choice([o.value for o in Order]),
    default=Order.UNCERTAINTY.value,
    help="Queue order: uncertainty (the most doubtful first), score (lowest first) or image.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_CONF,
    help="The confidence threshold the model ran with (its --conf): a segment scored at it is most doubtful.",
)
@click.option(
    "--classifications",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A folder of `meta build` per-segment classifier records: their top-two margin adds to the doubt.",
)
@click.option(
    "--token-env",
    metavar="NAME",
    default=None,
    help="Environment variable holding the page's token (required off loopback): reviewers give it once.",
)
@click.option(
    "--lease",
    "lease_s",
    type=click.FloatRange(10),
    default=300.0,
    help="Seconds a shown segment stays the reviewer's.",
)
@click.option("--page-size", type=click.IntRange(1, 200), default=24, help="Segments per page.")
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, help=DEBUG_HELP)
def serve(
    group: str,
    db: str | None,
    data_root: Path,
    host: str,
    port: int,
    order: str,
    threshold: float,
    classifications: Path | None,
    token_env: str | None,
    lease_s: float,
    page_size: int,
) -> None:
    """Serve the review page of a group of the store until Ctrl-C.

    Each reviewer names themselves once; every decision goes into the store's audit table. A
    segment shown to one reviewer is theirs for --lease seconds, so reviewers never overlap.
    Keys: a approve, r reject, s skip, u undo, A approve the page, f the whole picture.
    """
    import uvicorn

    from review.app import ReviewApp, create_app
    from review.pictures import Pictures
    from review.queue import ReviewQueue
    from store.segment_store import SegmentStore

    token = token_from_env(host, token_env)
    layout = DataLayout(data_root)
    store = SegmentStore.open(database_url(db, layout), create=False)
    try:
        if group not in store.group_names():
            known = ", ".join(store.group_names()) or "none"
            raise ServeError(f"segment store {store.url}: no group {group!r} (groups: {known})")
        margins = read_classifier_margins(classifications) if classifications else {}
        queue = ReviewQueue(store, group, Order(order), threshold, margins, lease_s)
        pictures = Pictures(layout.pictures, layout.pictures.parent / "review_cache")
        review = ReviewApp(
            store, queue, pictures, Access(token, session_secret(layout.pictures.parent)), group, page_size
        )
        sock = _bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        counts = store.status(group).counts
        unchecked = sum(n for _, _, s, n in counts if s == "unchecked")
        click.echo(
            f"{PROG}: group {group}: {sum(n for *_, n in counts)} segments, {unchecked} unchecked; "
            f"review at http://{shown}:{bound_port}/ (Ctrl-C stops)",
            err=True,
        )
        hosts = ["127.0.0.1", "localhost", "::1", "[::1]", host] if is_loopback(host) else ["*"]
        config = uvicorn.Config(
            create_app(review, hosts), log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn stopped cleanly, then passed Ctrl-C on
            uvicorn.Server(config).run(sockets=[sock])
        click.echo(f"{PROG}: stopped", err=True)
    finally:
        store.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of a socket that names it,
    # and without it every response (headers, then body) waits out the client's delayed ACK (40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror}); choose another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


__all__ = ["AccessError", "main"]
