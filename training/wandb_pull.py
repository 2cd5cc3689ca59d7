"""`seg-train wandb-pull`: download a model artifact from Weights & Biases (the checkpoints
`seg-train classify` uploads when it logs to W&B), without prompts and within a bounded time when
the server cannot be reached. The API key comes from WANDB_API_KEY only and is never printed.

:func:`pull_artifact` is the download; :func:`read_folder` and :func:`build_repo_command` are what
follows it and work on any folder (an artifact downloaded by hand, or with ``wandb artifact get``)."""

from __future__ import annotations

import os
import re
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_checkpoints.classifier import read_checkpoint
from segcontract.checkpoint_formats import CheckpointError
from store.layout import DataLayout

KEY_ENV = "WANDB_API_KEY"
_ARTIFACT = re.compile(
    r"^(?P<entity>[^/:\s]+)/(?P<project>[^/:\s]+)/(?P<name>[^/:\s]+)(?::(?P<version>[^/:\s]+))?$"
)


class PullError(Exception):
    """One line: a bad artifact name, no key, an unreachable server, an unknown artifact."""


@dataclass
class PullResult:
    folder: Path
    checkpoints: list[Path]
    name: str  # what to serve it as: the run's --name where the checkpoint records it
    skipped: list[str] = field(default_factory=list)  # one line per .ckpt that is not a classifier


def parse_artifact(text: str) -> tuple[str, str, str, str]:
    """(entity, project, name, version); the version defaults to ``latest``."""
    match = _ARTIFACT.match(text.strip())
    if match is None:
        raise PullError(
            f"--artifact {text!r}: expected ENTITY/PROJECT/NAME:VERSION (e.g. me/proj/model-abc:v3)"
        )
    return match["entity"], match["project"], match["name"], match["version"] or "latest"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _clean(exc: BaseException, key: str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return (line.replace(key, "***") if key else line)[:300]


def _with_deadline(work, seconds: float, what: str) -> Any:
    """``work()`` in a daemon thread, given up after ``seconds``: W&B's client retries some
    failures for minutes whatever its HTTP timeout says."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="wandb-pull")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise PullError(f"{what}: no answer within {seconds:.0f} s (offline, or a firewall?)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def pull_artifact(
    artifact: str, data_root: Path = Path("."), out: Path | None = None, timeout: int = 10
) -> PullResult:
    """Download ``artifact`` into ``out`` (default ``DATA/models/wandb/<name>_<version>/``)."""
    entity, project, name, version = parse_artifact(artifact)
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise PullError(f"{KEY_ENV} is not set: export your W&B API key (wandb.ai/authorize) and retry")
    folder = (
        Path(out)
        if out is not None
        else DataLayout(Path(data_root)).models / "wandb" / f"{_safe(name)}_{_safe(version)}"
    )
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb
    except ImportError:
        raise PullError("the wandb package is not installed: pip install 'segstack[train]'") from None

    server = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    full = f"{entity}/{project}/{name}:{version}"

    def find():
        api = wandb.Api(api_key=key, timeout=timeout)
        return api.artifact(full)

    try:
        found = _with_deadline(find, timeout * 2 + 5, f"W&B server {server}")
    except PullError:
        raise
    except Exception as exc:  # CommError (unreachable, unknown artifact), AuthenticationError, ValueError...
        raise PullError(f"W&B {server}: cannot get {full}: {_clean(exc, key)}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        found.download(root=str(folder))
    except OSError as exc:
        raise PullError(f"{folder}: cannot write the download ({exc.strerror or exc})") from None
    except Exception as exc:
        raise PullError(f"W&B {server}: download of {full} failed: {_clean(exc, key)}") from None
    return read_folder(folder, name)


def read_folder(folder: Path, fallback_name: str | None = None) -> PullResult:
    """What a downloaded model artifact holds, read from its folder alone (no W&B): the classifier
    checkpoints in it (Lightning's WandbLogger uploads each as ``model.ckpt``), the name to serve
    them as (the ``name`` the run recorded in ``hyper_parameters``, else ``fallback_name``, else
    the folder's name) and, in ``skipped``, why each other ``.ckpt`` (no seg-train classify
    checkpoint) was left out, one line each."""
    folder = Path(folder)
    checkpoints: list[Path] = []
    skipped: list[str] = []
    recorded: str | None = None
    for path in sorted(folder.rglob("*.ckpt")):
        try:
            _, payload = read_checkpoint(path)
        except CheckpointError as exc:
            skipped.append(str(exc))
            continue
        checkpoints.append(path)
        name = payload["hyper_parameters"].get("name")
        if recorded is None and isinstance(name, str) and name:
            recorded = name
    return PullResult(folder, checkpoints, recorded or _safe(fallback_name or folder.name), skipped)


def build_repo_command(result: PullResult) -> str | None:
    """The build-repo command line that serves the first checkpoint (quoted for a POSIX shell),
    or None when the folder holds none."""
    if not result.checkpoints:
        return None
    words = ["build-repo", "--model", "classifier", "--weights", str(result.checkpoints[0])]
    return shlex.join([*words, "--name", result.name])
