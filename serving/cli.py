"""``seg-serve``: run tritonserver on a model repository until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from segcontract.errors import DEBUG_HELP, reported
from serving.engine_check import check_repository
from serving.tritonserver import PortInUse, Ports, ServerError, ServerInstall, TritonServer, free_port

PROG = "seg-serve"
DEBUG = "segstack.debug"  # where --debug leaves its value, in the context's meta
# A server that does not start or stops is the failure of seg-serve's one task: it has always
# ended with 1 for it; any other user error ends with segcontract.errors.EXIT_CODE.
SERVER_FAILED = 1


class _ServeCommand(click.Command):
    """The user errors (``segcontract.errors.SegstackError``) end here: one line on stderr and
    the exit code, or the traceback with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        with reported(PROG, debug=ctx.meta.get(DEBUG, False), exit_codes={ServerError: SERVER_FAILED}):
            return super().invoke(ctx)


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[DEBUG] = value


@click.command(
    cls=_ServeCommand, context_settings={"help_option_names": ["-h", "--help"], "show_default": True}
)
@click.option(
    "--model-repository",
    "--model_repository",
    "repository",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The repository build-repo wrote (default of build-repo: model_repository/).",
)
@click.option("--grpc-port", type=int, default=8001, help="gRPC port (0: pick a free one).")
@click.option("--http-port", type=int, default=8000, help="HTTP port (0: pick a free one).")
@click.option("--metrics-port", type=int, default=8002, help="Prometheus metrics port (0: pick a free one).")
@click.option(
    "--log-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the server log here instead of the terminal.",
)
@click.option("--startup-timeout", type=float, default=300, help="Seconds to wait for every model to load.")
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug, help=DEBUG_HELP)
def main(
    repository: Path,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    log_file: Path | None,
    startup_timeout: float,
) -> None:
    """Serve a model repository with tritonserver.

    Uses a tritonserver on PATH (the NGC image) if there is one, else the one shipped in the
    nvidia-pytriton wheel (installed by `make setup`, or on first use). Loopback only: put it
    behind your own proxy, or run the NGC image, to expose it.

    The server ends with seg-serve, however seg-serve ends (kill -9 included). A port already in
    use is refused before starting; what a dead server left behind (Python-backend stub
    processes, /dev/shm regions) is removed on the next start.
    """
    ports = Ports(*(p or free_port() for p in (http_port, grpc_port, metrics_port)))
    install = ServerInstall.locate()
    for warning in check_repository(repository, install.backend_dir):  # TensorRT engines vs this machine
        click.echo(f"seg-serve: warning: {warning}", err=True)
    server = TritonServer(repository, ports=ports, log_path=log_file, install=install)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start(timeout_s=startup_timeout, cancel=stop)
    except PortInUse as exc:
        raise ServerError(
            f"{exc}; stop that server, or pass --{exc.kind}-port with another port (0 picks a free one)"
        ) from exc
    finally:
        if server.cleaned_leftovers:
            click.echo(f"seg-serve: removed what dead servers left: {server.cleaned_leftovers}", err=True)
    click.echo(
        f"seg-serve: ready. gRPC {server.grpc_url}  HTTP http://{server.http_url}  "
        f"metrics http://{server.metrics_url}/metrics  (Ctrl-C stops)",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            code = server.process.poll() if server.process is not None else None
            if server.process is None or code is not None:
                where = f"; see {log_file}" if log_file else ""
                raise ServerError(f"tritonserver exited unexpectedly (code {code}){where}")
    finally:
        server.stop()
        click.echo("seg-serve: stopped", err=True)
