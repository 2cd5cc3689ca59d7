"""``seg-client meta post`` as a library call: the service's settings from the configuration and
the command line, then each group's ret_meta.json sent in turn (``clients.meta.post``); a group
that fails does not stop the others."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from clients.meta.config_file import ServiceSettings, load_config
from clients.meta.layout import ret_meta_path
from clients.meta.post import PostSummary, post_group, token_from_environment
from clients.triton.client import ClientError
from clients.triton.progress import Progress, Tally, no_progress


@dataclass(frozen=True)
class MetaPostOptions:
    """The groups, the configuration file, and what the command line sets over its ``ret_meta:``
    (None keeps the file's)."""

    groups: tuple[str, ...]
    config_path: Path | None = None
    data_root: Path = Path(".")
    endpoint: str | None = None
    chunk_size: int | None = None
    ca_bundle: Path | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class GroupPosted:
    """What became of one group: what was sent, or why it was not (all) sent."""

    group: str
    endpoint: str
    chunk_size: int
    dry_run: bool
    summary: PostSummary | None = None
    error: str | None = None
    chunks: tuple[int, int] | None = None  # (acknowledged, to send), where sending had begun

    def line(self) -> str:
        if self.error is not None:
            done = f", {self.chunks[0]} of {self.chunks[1]} chunks acknowledged" if self.chunks else ""
            return f"seg-client: error: {self.group}: not posted{done}: {self.error}"
        s = self.summary
        pending = s.images - s.already
        if self.dry_run:
            return (
                f"{self.group}: {s.images} images, {s.already} acknowledged before; {pending} to send to "
                f"{self.endpoint} in {s.chunks} chunks of at most {self.chunk_size} (dry run: nothing sent)"
            )
        return (
            f"{self.group}: {pending} images sent in {s.sent} chunks ({s.bytes_sent / 1024:.1f} KiB gzip, "
            f"{s.attempts} requests), {s.already} acknowledged before; ledger {s.ledger}"
        )


def post_groups(
    options: MetaPostOptions,
    *,
    progress: Progress = no_progress,
    on_posted: Callable[[GroupPosted], None] = lambda posted: None,
) -> list[GroupPosted]:
    """Post each group; ``on_posted`` hears of each as soon as it is done with (its chunks' bar,
    if any, is closed by then)."""
    config = load_config(options.config_path, options.data_root)
    settings = config.service
    if options.chunk_size is not None:
        settings = replace(settings, chunk_size=options.chunk_size)
    if options.ca_bundle is not None:
        settings = replace(settings, ca_bundle=options.ca_bundle)
    endpoint = options.endpoint or settings.endpoint
    if not endpoint:
        where = config.path or Path(options.data_root) / "segstack.yaml"
        raise ClientError(f"no endpoint: give --endpoint URL or ret_meta.endpoint in {where}")
    token = token_from_environment(settings)
    posted = []
    for group in options.groups:
        outcome = _post(
            ret_meta_path(config.layout, group),
            group,
            endpoint=endpoint,
            token=token,
            settings=settings,
            dry_run=options.dry_run,
            progress=progress,
        )
        on_posted(outcome)
        posted.append(outcome)
    return posted


def _post(
    path: Path,
    group: str,
    *,
    endpoint: str,
    token: str | None,
    settings: ServiceSettings,
    dry_run: bool,
    progress: Progress,
) -> GroupPosted:
    outcome = GroupPosted(group, endpoint, settings.chunk_size, dry_run)
    sending: list[tuple[Tally, int]] = []  # the chunks' tally and count, once sending begins
    with ExitStack() as bars:

        def start(chunks: int) -> None:
            sending.append((Tally(bars.enter_context(progress(f"{group} → service", chunks))), chunks))

        def sent(n: int) -> None:
            sending[-1][0](n)

        try:
            summary = post_group(
                path, group, endpoint, token, settings, dry_run=dry_run, on_start=start, on_chunk=sent
            )
        except ClientError as exc:  # this group's: the others are still sent
            chunks = (sending[0][0].done, sending[0][1]) if sending else None
            return replace(outcome, error=str(exc), chunks=chunks)
    return replace(outcome, summary=summary)
