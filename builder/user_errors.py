"""How ``build-repo`` reports a user error: the group every command runs in catches
``segcontract.errors.SegstackError`` (BuildError among them) once, for the build and its
subcommands alike, and prints one line on stderr with exit code 2; ``--debug`` (or
``SEGSTACK_DEBUG=1``) shows the traceback instead."""

from __future__ import annotations

import sys
from typing import Any

import click

from builder.tensorrt.docker_hint import docker_run_line
from builder.tensorrt.engine_build import TensorRTMissing
from segcontract.errors import DEBUG_HELP, EXIT_CODE, debug_requested, error_line, reported

PROG = "build-repo"
DEBUG = "segstack.debug"  # where --debug leaves its value, in the context's meta


class BuildCommands(click.Group):
    """A click group whose commands' user errors end as one line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = ctx.meta.get(DEBUG, False)
        with reported(PROG, debug=debug):
            try:
                return super().invoke(ctx)
            except TensorRTMissing as exc:
                if debug_requested(debug):
                    raise
                _tensorrt_missing(exc)


def _tensorrt_missing(exc: TensorRTMissing) -> None:
    """The error's line on stderr, then the docker run line (stdout, to copy or pipe) that makes
    the same build in the image that has TensorRT."""
    print(f"{error_line(PROG, exc)}:", file=sys.stderr, flush=True)
    click.echo(docker_run_line(sys.argv[1:]))
    raise SystemExit(EXIT_CODE)


def _debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta[DEBUG] = value


DEBUG_OPTION = click.option("--debug", is_flag=True, expose_value=False, callback=_debug, help=DEBUG_HELP)
