"""``seg-client groups pull`` as a library call: the manifest read (over the same HTTP client as
the images), then the group pulled into DATA/ (``clients.groups.pull``), the store's badlist
left out of its CSV."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clients.groups.download import Fetcher, FetchSettings
from clients.groups.manifest import ManifestError, read_manifest, unsafe_name_problem
from clients.groups.pull import PullSummary, dataset_path, pull_group
from clients.triton.progress import Progress, no_progress
from store.badlist import read_badlist
from store.layout import DataLayout


@dataclass(frozen=True)
class PullOptions:
    """The group, its manifest (a path or an http(s) URL), and how its images are fetched."""

    group: str
    manifest: str
    data_root: Path = Path(".")
    fetch: FetchSettings = field(default_factory=FetchSettings)
    concurrency: int = 8  # images fetched at once
    replace: bool = False  # take over other groups' pictures under the same id
    allow_local_files: bool = False  # read the local paths a remote manifest names
    db: str | None = None  # the store whose badlist is read


def run_pull(
    options: PullOptions,
    *,
    progress: Progress = no_progress,
    on_note: Callable[[str], None] = lambda line: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> PullSummary:
    """Pull the group; ``on_note`` gets what the person running it should know (a file that
    shadows the group's CSV), ``on_failure`` each image that failed, with the reason."""
    layout = DataLayout(options.data_root)
    if problem := unsafe_name_problem(options.group):
        raise ManifestError(f"--group {options.group!r} {problem}; a group name must be a plain file name")
    exclude = _badlisted(options.db, layout)
    with Fetcher(options.fetch, connections=options.concurrency) as fetcher:
        parsed = read_manifest(options.manifest, fetcher.fetch_bytes)
        _warn_if_shadowed(layout, options.group, on_note)
        with progress(f"pull {options.group}", len(parsed.rows)) as advance:
            return pull_group(
                options.group,
                parsed,
                layout,
                fetcher,
                concurrency=options.concurrency,
                replace=options.replace,
                allow_local_files=options.allow_local_files,
                exclude=exclude,
                on_progress=advance,
                on_failure=on_failure,
            )


def _badlisted(db: str | None, layout: DataLayout) -> Callable[[str], bool] | None:
    """Whether a picture is on the store's badlist; None when there is none to apply (no store:
    pulling creates no database)."""
    badlist = read_badlist(db, layout, create=True)
    return badlist.holds if badlist is not None else None


def _warn_if_shadowed(layout: DataLayout, group: str, on_note: Callable[[str], None]) -> None:
    """``infer --group`` reads <group>.txt before <group>.csv: say so rather than let it surprise."""
    txt = layout.datasets / f"{group}.txt"
    if txt.exists():
        on_note(
            f"seg-client: warning: {txt} exists and is read before {dataset_path(layout, group)} "
            "by --group; remove it to use what this pull writes"
        )
