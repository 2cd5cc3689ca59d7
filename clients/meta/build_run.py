"""``seg-client meta build`` as a library call: the configuration, every group checked before any
server is asked, the models' facts from the servers, then each group's ret_meta.json
(``clients.meta.build``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from clients.meta.build import MetaSummary, build_meta, check_entries
from clients.meta.config_file import load_config
from clients.triton.client import ClientError
from clients.triton.progress import Progress, no_progress
from clients.triton.replicas import connect
from clients.triton.work_share import DEFAULT_LEASE_S
from store.layout import group_index


@dataclass(frozen=True)
class MetaBuildOptions:
    """The groups, the configuration file (``config_path``, else ``<data_root>/segstack.yaml``)
    and what the command line sets over it (``urls``, ``db``: empty or None keeps the file's)."""

    groups: tuple[str, ...]
    config_path: Path | None = None
    data_root: Path = Path(".")
    urls: tuple[str, ...] = ()
    db: str | None = None
    lease_s: float = DEFAULT_LEASE_S


@dataclass(frozen=True)
class MetaBuildReport:
    summaries: list[MetaSummary]
    servers: str | None  # the replicas' summary line, where there were several


def build_groups(
    options: MetaBuildOptions,
    *,
    progress: Progress = no_progress,
    on_note: Callable[[str], None] = lambda line: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> MetaBuildReport:
    """Build every group's ret_meta.json in turn with the configured models."""
    config = load_config(options.config_path, options.data_root)
    if options.db is not None:
        config = replace(config, db=options.db)
    if not config.models:
        where = config.path or Path(options.data_root) / "segstack.yaml"
        raise ClientError(f"{where}: no models: list the served models under models: (see the README)")
    for group in options.groups:  # a group that is not there is said before any server is asked
        group_index(group, config.layout, instead=None)
    client = connect(options.urls or config.urls, config.timeout_s, on_event=on_note)
    infos = [client.model_info(entry.name) for entry in config.models]
    check_entries(config.models, infos, config.path)
    summaries = [
        build_meta(
            group, config, client, infos, progress=progress, on_failure=on_failure, lease_s=options.lease_s
        )
        for group in options.groups
    ]
    return MetaBuildReport(summaries, client.summary())
