"""``seg-client meta build`` and ``meta post``: ret_meta per group, and sending it to the
metadata service. Each command reads its options into a frozen dataclass and calls one library
function (``clients.meta.build_run``, ``clients.meta.post_run``)."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import click

from clients.failure_log import FailureLog
from clients.options import CONFIGURED_URL_OPTION, DATA_ROOT_OPTION, DB_OPTION, LEASE_OPTION
from clients.triton.progress import above_bars, progress_bar
from segcontract.errors import SegstackError

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The configuration file (YAML; its keys are in the README) [<data-root>/segstack.yaml].",
)


def _groups_argument(command):
    """``--groups 'sasha test' test``, as the original scripts take them: the option names the
    first group, the words after it the others (``--groups a --groups b`` works too)."""
    command = click.argument("more_groups", nargs=-1, metavar="[GROUP]...")(command)
    return click.option(
        "--groups",
        "--group",
        "groups",
        multiple=True,
        metavar="GROUP",
        help="The groups (DATA/datasets/<group>.txt|.csv|/), e.g. --groups 'sasha test' test.",
    )(command)


def _all_groups(groups: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    every = tuple(dict.fromkeys([*groups, *more]))
    if not every:
        raise click.UsageError("name the groups: --groups GROUP [GROUP]...")
    return every


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"seg-client: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def meta() -> None:
    """Per-image metadata of groups (ret_meta.json) from the configured models, and its upload."""


@meta.command("build")
@_groups_argument
@CONFIG_OPTION
@DATA_ROOT_OPTION
@CONFIGURED_URL_OPTION
@DB_OPTION
@LEASE_OPTION
def build(groups, more_groups, config_path, data_root, urls, db, lease_s) -> None:
    """Build <ret_meta>/<group>/ret_meta.json for each group: every image's facts (path, size,
    sha256, groups, its DATA/meta fields) and the outputs of every model listed under `models:` in
    the configuration, with each model's version. Badlisted images are left out. A re-run asks
    the models only about new or changed pictures, and about every picture for a model whose
    version changed."""
    from clients.meta.build_run import MetaBuildOptions, build_groups

    options = MetaBuildOptions(_all_groups(groups, more_groups), config_path, data_root, urls, db, lease_s)
    failures = FailureLog(above_bars)
    try:
        report = build_groups(
            options, progress=partial(progress_bar, leave=False), on_note=above_bars, on_failure=failures
        )
    except SegstackError:
        _echo(failures.summary())  # then seg-client's handler prints the error's one line
        raise
    except KeyboardInterrupt:
        _echo(failures.summary())
        _fail("interrupted; finished answers are kept, a re-run resumes", 130)
    _echo(failures.summary())
    _echo([report.servers] if report.servers else [])
    for s in report.summaries:
        for note in s.notes:
            click.echo(f"seg-client: note: {s.group}: {note}", err=True)
        asked = ", ".join(f"{m} {r.written} asked / {r.skipped} kept" for m, r in s.per_model.items())
        failed = f"; {len(s.failures)} images with a missing result" if s.failures else ""
        click.echo(
            f"{s.group}: {s.images} images ({s.badlisted} badlisted left out; {asked}{failed}) → {s.path}"
        )
    if any(s.failures for s in report.summaries):
        sys.exit(1)


@meta.command("post")
@_groups_argument
@CONFIG_OPTION
@DATA_ROOT_OPTION
@click.option("--endpoint", default=None, help="The metadata service's URL [the config's ret_meta.endpoint].")
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 10000),
    default=None,
    help="Images per request [the config's, else 100].",
)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A CA bundle to check the service's TLS certificate with [the config's, else the system's].",
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing (no token needed).")
def post(groups, more_groups, config_path, data_root, endpoint, chunk_size, ca_bundle, dry_run) -> None:
    """POST each group's ret_meta.json to the metadata service in gzip chunks, with the bearer
    token from the environment variable the config names (ret_meta.token_env, default
    SEGSTACK_API_TOKEN) and an Idempotency-Key per chunk. Connection errors, timeouts, 5xx and 429
    are retried with backoff (honouring Retry-After), and so is a 2xx whose body is not the
    service's acknowledgement (segcontract/schemas/ret_meta_ack.schema.json); the ledger beside
    ret_meta.json lists the images the service acknowledged, so a re-run sends only the rest, and
    a rebuilt ret_meta only the images that changed. A group refused or not acknowledged is
    reported and the others are still sent; the exit status is 2 unless every group was posted."""
    from clients.meta.post_run import MetaPostOptions, post_groups

    options = MetaPostOptions(
        _all_groups(groups, more_groups), config_path, data_root, endpoint, chunk_size, ca_bundle, dry_run
    )
    try:
        posted = post_groups(
            options,
            progress=partial(progress_bar, unit="chunk", leave=False),
            on_posted=lambda outcome: click.echo(outcome.line(), err=outcome.error is not None),
        )
    except KeyboardInterrupt:
        _fail("interrupted; acknowledged chunks are in the ledger, a re-run sends the rest", 130)
    if any(outcome.error is not None for outcome in posted):
        sys.exit(2)


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
