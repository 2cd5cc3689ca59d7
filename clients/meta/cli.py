"""``seg-client meta build`` and ``meta post``: ret_meta per group, and sending it to the
metadata service."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from clients.failure_log import FailureLog
from clients.options import DATA_ROOT_OPTION, DB_OPTION, LEASE_OPTION
from clients.triton.client import ClientError
from store.errors import StoreError

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


def _all_groups(groups: tuple[str, ...], more: tuple[str, ...]) -> list[str]:
    every = list(dict.fromkeys([*groups, *more]))
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
@click.option(
    "--url",
    multiple=True,
    metavar="HOST:PORT",
    help="Triton gRPC HOST:PORT [the config's triton.url, else 127.0.0.1:8001]; several replicas: "
    "repeat it or separate by commas (as for infer).",
)
@DB_OPTION
@LEASE_OPTION
def build(groups, more_groups, config_path, data_root, url, db, lease_s) -> None:
    """Build <ret_meta>/<group>/ret_meta.json for each group: every image's facts (path, size,
    sha256, groups, its DATA/meta fields) and the outputs of every model listed under `models:` in
    the configuration, with each model's version. Badlisted images are left out. A re-run asks
    the models only about new or changed pictures, and about every picture for a model whose
    version changed."""
    from dataclasses import replace

    from clients.meta.build import build_meta, check_entries
    from clients.meta.config_file import load_config
    from clients.triton.replicas import connect
    from store.layout import group_index

    failures = FailureLog(lambda line: tqdm.write(line, file=sys.stderr))
    try:
        every = _all_groups(groups, more_groups)
        config = load_config(config_path, data_root)
        if db is not None:
            config = replace(config, db=db)
        if not config.models:
            where = config.path or Path(data_root) / "segstack.yaml"
            raise ClientError(f"{where}: no models: list the served models under models: (see the README)")
        for group in every:  # a group that is not there is said before any server is asked
            group_index(group, config.layout, instead=None)
        client = connect(
            url or config.urls, config.timeout_s, on_event=lambda line: tqdm.write(line, file=sys.stderr)
        )
        infos = [client.model_info(entry.name) for entry in config.models]
        check_entries(config.models, infos, config.path)
        bars: list[tqdm] = []

        def progress(desc: str, total: int):
            """One bar at a time: the model being asked."""
            while bars:
                bars.pop().close()
            bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)
            bars.append(bar)
            return bar.update

        summaries = []
        try:
            for group in every:
                summaries.append(build_meta(group, config, client, infos, progress, failures, lease_s))
        finally:
            for bar in bars:
                bar.close()
    except (ClientError, StoreError) as exc:
        _echo(failures.summary())
        _fail(str(exc))
    except KeyboardInterrupt:
        _echo(failures.summary())
        _fail("interrupted; finished answers are kept, a re-run resumes", 130)
    _echo(failures.summary())
    _echo(list(filter(None, [client.summary()])))
    for s in summaries:
        for note in s.notes:
            click.echo(f"seg-client: note: {s.group}: {note}", err=True)
        asked = ", ".join(f"{m} {r.written} asked / {r.skipped} kept" for m, r in s.per_model.items())
        failed = f"; {len(s.failures)} images with a missing result" if s.failures else ""
        click.echo(
            f"{s.group}: {s.images} images ({s.badlisted} badlisted left out; {asked}{failed}) → {s.path}"
        )
    if any(s.failures for s in summaries):
        sys.exit(1)


@meta.command("post")
@_groups_argument
@CONFIG_OPTION
@DATA_ROOT_OPTION
@click.option("--endpoint", default=None, help="The service's URL [the config's ret_meta.endpoint].")
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
    from dataclasses import replace

    from clients.meta.build import ret_meta_path
    from clients.meta.config_file import load_config
    from clients.meta.post import post_group, token_from_environment

    try:
        every = _all_groups(groups, more_groups)
        config = load_config(config_path, data_root)
        settings = config.service
        if chunk_size is not None:
            settings = replace(settings, chunk_size=chunk_size)
        if ca_bundle is not None:
            settings = replace(settings, ca_bundle=ca_bundle)
        endpoint = endpoint or settings.endpoint
        if not endpoint:
            where = config.path or Path(data_root) / "segstack.yaml"
            raise ClientError(f"no endpoint: give --endpoint URL or ret_meta.endpoint in {where}")
        token = token_from_environment(settings)
        failed: list[str] = []
        for group in every:
            path = ret_meta_path(config.layout, group)
            bars: list[tqdm] = []

            def start(chunks: int, group: str = group, bars: list = bars) -> None:
                bars.append(
                    tqdm(total=chunks, desc=f"{group} → service", unit="chunk", file=sys.stderr, leave=False)
                )

            def sent(n: int, bars: list = bars) -> None:
                bars[-1].update(n)

            error: str | None = None
            try:
                s = post_group(path, group, endpoint, token, settings, dry_run, on_start=start, on_chunk=sent)
            except ClientError as exc:  # this group's: the others are still sent
                error = str(exc)
            finally:
                for bar in bars:  # closed before any line is written: a bar shares stderr's line
                    bar.close()
            if error is not None:
                done = f", {bars[0].n} of {bars[0].total} chunks acknowledged" if bars else ""
                click.echo(f"seg-client: error: {group}: not posted{done}: {error}", err=True)
                failed.append(group)
                continue
            pending = s.images - s.already
            if dry_run:
                click.echo(
                    f"{group}: {s.images} images, {s.already} acknowledged before; {pending} to send to "
                    f"{endpoint} in {s.chunks} chunks of at most {settings.chunk_size} "
                    "(dry run: nothing sent)"
                )
            else:
                click.echo(
                    f"{group}: {pending} images sent in {s.sent} chunks ({s.bytes_sent / 1024:.1f} KiB gzip, "
                    f"{s.attempts} requests), {s.already} acknowledged before; ledger {s.ledger}"
                )
        if failed:
            sys.exit(2)
    except ClientError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; acknowledged chunks are in the ledger, a re-run sends the rest", 130)


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
