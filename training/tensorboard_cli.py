"""``seg-train tensorboard``: TensorBoard over a folder of runs (every trainer writes event files
into its run's folder), on loopback unless --host says otherwise."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from segcontract.errors import SegstackError

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 6006


class TensorBoardError(SegstackError):
    """A RUNS_DIR that is not there, or a port TensorBoard cannot bind: one line."""


def start_tensorboard(runs_dir: Path, port: int = DEFAULT_PORT, host: str = LOOPBACK) -> str:
    """TensorBoard serving ``runs_dir`` in a background thread of this process; returns its URL."""
    from tensorboard import program

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        what = "not a folder" if runs_dir.exists() else "no such folder"
        raise TensorBoardError(f"{runs_dir}: {what}; give the folder the trainers write their runs to")
    board = program.TensorBoard()
    board.configure(
        argv=[None, "--logdir", str(runs_dir), "--port", str(port), "--host", host, "--load_fast", "false"]
    )
    try:
        return board.launch()
    except program.TensorBoardServerException as exc:
        raise TensorBoardError(f"{host}:{port}: {exc.msg} (another --port?)") from None


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, kill PID) ends it as Ctrl-C does."""

    def stop(_signum, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@click.command("tensorboard")
@click.argument("runs_dir", type=click.Path(path_type=Path), metavar="RUNS_DIR")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, help="Port to serve on.")
@click.option(
    "--host",
    default=LOOPBACK,
    help="Address to bind: loopback by default; 0.0.0.0 (every interface) only when asked, e.g. in "
    "a container whose port is published.",
)
def tensorboard(runs_dir: Path, port: int, host: str) -> None:
    """Start TensorBoard over RUNS_DIR (runs/segment, runs/semantic, DATA/models/NAME...) and print
    its URL. Every run folder with event files under it is a run; new ones appear as they are
    written. Ctrl-C stops it."""
    url = start_tensorboard(runs_dir, port, host)
    if not any(Path(runs_dir).rglob("events.out.tfevents*")):
        click.echo(f"seg-train: no event files under {runs_dir} yet; runs appear when written", err=True)
    click.echo(f"TensorBoard at {url} (Ctrl-C stops)")
    _stop_on_sigterm()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("TensorBoard stopped", err=True)
