"""`seg-train wandb-pull`: download a model artifact from Weights & Biases (the checkpoints
`seg-train classify` uploads when it logs to W&B), without prompts and within a bounded time when
the server cannot be reached. The API key comes from WANDB_API_KEY only and is never printed.

:func:`pull_artifact` is the download; :func:`read_folder` and :func:`build_repo_command` are what
follows it and work on any folder (an artifact downloaded by hand, or with ``wandb artifact get``)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_checkpoints.classifier import read_checkpoint
from segcontract.checkpoint_formats import CheckpointError
from segcontract.errors import SegstackError
from store.layout import DataLayout
from training.wandb_download import KEY_ENV

_ARTIFACT = re.compile(
    r"^(?P<entity>[^/:\s]+)/(?P<project>[^/:\s]+)/(?P<name>[^/:\s]+)(?::(?P<version>[^/:\s]+))?$"
)


class PullError(SegstackError):
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


_START_SECONDS = 60  # for the child to start and import wandb, on a busy machine
_EXIT_SECONDS = 5  # for the child (and wandb-core) to finish after its last report


class _Child:
    """The child running :mod:`training.wandb_download`, in its own session so that it and the
    wandb-core service it starts end together (and a Ctrl-C here reaches only this process)."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._buffer = b""

    def report(
        self, seconds: float | None, what: str, why: str = "offline, or a firewall?"
    ) -> dict[str, Any]:
        """The next report, waiting at most ``seconds`` (None: until it comes or the child ends);
        past the deadline, a PullError saying ``what`` did not answer and ``why`` that may be."""
        deadline = None if seconds is None else time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise PullError(f"{what}: no answer within {seconds:.0f} s ({why})")
            if not select.select([fd], [], [], wait)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait()
                raise PullError(f"{what}: the W&B client ended without an answer (exit code {code})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def end(self, grace: float) -> None:
        """Let the child finish for ``grace`` seconds, then end what is left of its session."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):  # the whole session has ended
                break
            time.sleep(0.5)
        self.proc.stdout.close()
        if self.proc.returncode is None:
            self.proc.wait()


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
    if importlib.util.find_spec("wandb") is None:
        raise PullError("the wandb package is not installed: pip install 'segstack[train]'")
    server = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    full = f"{entity}/{project}/{name}:{version}"
    # A new folder is downloaded beside it and renamed into place when complete; a re-run after
    # an interrupted download goes on in the same partial folder.
    target = folder if folder.is_dir() else folder.with_name(f".{folder.name}.partial")
    command = [sys.executable, "-m", "training.wandb_download", full, str(target), "--timeout", str(timeout)]
    child = _Child(command)
    try:
        report = child.report(_START_SECONDS, "the W&B client", "is the machine overloaded?")
        if "ready" in report:
            report = child.report(timeout * 2 + 5, f"W&B server {server}")
        while "error" not in report and "done" not in report:
            report = child.report(None, f"W&B server {server}")  # the download: as long as it takes
    except BaseException:  # a deadline, or Ctrl-C: the child does not see the terminal's SIGINT
        child.end(0)
        raise
    child.end(_EXIT_SECONDS)
    if "error" in report:
        raise PullError(report["error"])
    if target != folder:
        try:
            target.rename(folder)
        except OSError as exc:
            raise PullError(f"{folder}: cannot move the download there ({exc.strerror or exc})") from None
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
