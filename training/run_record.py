"""``run.json``: what made a training run and how it went, in the run's folder, for every trainer
(``seg-train yolo``, ``semantic``, ``classify``); its schema is
``segcontract/schemas/run_record.schema.json``.

It holds the command line, every resolved argument, the dataset's path and content hash
(:func:`dataset_fingerprint`), the package versions (:func:`package_versions`), the git commit
(:func:`git_state`), the start and end times, the status and the final metrics. :class:`RunRecord`
writes it atomically when training starts (``running``) and again when it ends (``finished``,
``failed``, or ``interrupted`` by Ctrl+C). A run resumed in its own folder keeps the first start
time and adds its attempt to ``history``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segcontract.files import file_sha256, write_json_atomic

log = logging.getLogger("seg-train")

FORMAT = "segstack-run/1"
FILE_NAME = "run.json"
TRAINERS = ("yolo", "semantic", "classify")
PROGRESS_FILES = 2000  # a progress bar while hashing a dataset of at least this many files
GIT_TIMEOUT_S = 10
SKIPPED_SUFFIXES = (".cache",)  # ultralytics writes labels/*.cache beside the labels: not the data
SPLIT_KEYS = ("train", "val", "test", "minival")  # the splits a data.yaml may name

# the libraries each trainer's result depends on: record key -> distribution name
LIBRARIES: dict[str, dict[str, str]] = {
    "yolo": {"ultralytics": "ultralytics"},
    "semantic": {
        "segmentation_models_pytorch": "segmentation-models-pytorch",
        "timm": "timm",
        "albumentations": "albumentations",
    },
    "classify": {"lightning": "lightning", "timm": "timm"},
}
COMMON = {"torch": "torch", "numpy": "numpy", "segstack": "segstack"}


def now() -> str:
    """The time now, ISO 8601 in UTC (``2025-01-31T12:00:00.123Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- the dataset's content hash


def dataset_fingerprint(path: Path | str, files: Iterable[Path | str] | None = None) -> dict[str, Any]:
    """``{"path", "sha256", "files"}`` (and ``"unreadable"`` when some could not be read): one
    sha256 over the dataset's files, their relative paths in sorted order each with its own sha256
    (read a MiB at a time), so it changes when any file is renamed, added, removed or changed.

    ``path`` a folder: every file below it. ``path`` a data.yaml: the yaml, and every file under
    the image folders (or in the image lists) its splits name and under their ``labels``
    counterparts. ``files``: these (and ``path`` itself when it is a file) instead. Paths are
    relative to ``path`` (a folder) or to its folder (a file)."""
    path = Path(path)
    root = path if path.is_dir() else path.parent
    if files is not None:
        found = {Path(f) for f in files} | ({path} if path.is_file() else set())
    elif path.is_dir():
        found = set(_files_below(path))
    elif path.suffix in {".yaml", ".yml"}:
        found = _data_yaml_files(path)
    else:
        found = {path}
    named = sorted((_relative(f, root), f) for f in found if not f.name.endswith(SKIPPED_SUFFIXES))
    digest = hashlib.sha256()
    unreadable = 0
    for rel, file in _progress(named):
        try:
            sha = file_sha256(file)
        except OSError:
            sha, unreadable = "missing", unreadable + 1
        digest.update(f"{rel}\0{sha}\n".encode())
    out: dict[str, Any] = {"path": str(path), "sha256": digest.hexdigest(), "files": len(named)}
    if unreadable:
        out["unreadable"] = unreadable
    return out


def _files_below(folder: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            yield Path(dirpath) / name


def _relative(file: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(file, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return file.as_posix()


def _progress(items: list) -> Iterable:
    if len(items) < PROGRESS_FILES:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="hashing the dataset", unit="file", file=sys.stderr, leave=False)


def _labels_of(image_path: str) -> str:
    """ultralytics' label location for an image path (its last ``/images/`` becomes ``/labels/``)."""
    a, b = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return b.join(image_path.rsplit(a, 1)) if a in image_path else image_path


def _data_yaml_files(path: Path) -> set[Path]:
    """The yaml and the files of the splits it names (folders or .txt image lists)."""
    import yaml

    found = {path}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return found
    if not isinstance(data, dict):
        return found
    base = Path(str(data.get("path") or path.parent))
    if not base.is_absolute():
        base = path.parent / base if (path.parent / base).exists() else base.resolve()
    for key in SPLIT_KEYS:
        value = data.get(key)
        for entry in value if isinstance(value, list) else [value] if value else []:
            split = Path(str(entry))
            split = split if split.is_absolute() else base / split
            if split.is_dir():
                found.update(_files_below(split))
                labels = Path(_labels_of(f"{split}{os.sep}"))
                if labels != Path(f"{split}{os.sep}") and labels.is_dir():
                    found.update(_files_below(labels))
            elif split.is_file():  # a list of images, one a line
                found.add(split)
                for line in split.read_text().splitlines():
                    if line.strip():
                        image = Path(line.strip())
                        image = image if image.is_absolute() else split.parent / image
                        found.add(image)
                        label = Path(_labels_of(str(image))).with_suffix(".txt")
                        if label.is_file():
                            found.add(label)
    return found


# ---------------------------------------------------------------- versions and git


def package_versions(trainer: str) -> dict[str, str | None]:
    """Python's version and the installed versions of torch, numpy, segstack and the trainer's
    libraries (None for one that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in {**COMMON, **LIBRARIES.get(trainer, {})}.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def _git(folder: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # status takes no index lock
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hangs
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(start_dir: Path | str) -> dict[str, Any] | None:
    """``{"commit", "dirty", "root"}`` of the git work tree holding ``start_dir`` (dirty: tracked
    files differ from the commit; untracked files do not count), or None when there is none or git
    is missing; never raises."""
    folder = Path(start_dir)
    if not folder.is_dir():
        return None
    root = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD")
    if root is None or commit is None:
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip()), "root": root.strip()}


def source_git_state() -> dict[str, Any] | None:
    """The git state of the checkout segstack runs from (an editable install), else of the
    working directory's repository (segstack installed from a wheel, the experiment's repo)."""
    source = Path(__file__).resolve().parent.parent
    state = git_state(source)
    if state is not None and Path(state["root"]).resolve() == source:
        return state
    return git_state(Path.cwd())


# ---------------------------------------------------------------- plain JSON values


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: paths and other objects as strings, tuples as lists, dataclasses
    as dicts, non-finite floats as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def numbers(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The finite numeric values of ``metrics`` (tensors and numpy scalars as Python numbers)."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[str(key)] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of many values
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


# ---------------------------------------------------------------- the record


class RunRecord:
    """Context manager writing ``<run_dir>/run.json``: at the start (status ``running``) and at the
    end (``finished`` with :attr:`final_metrics`, ``failed`` with the error, ``interrupted`` on
    KeyboardInterrupt, or whatever :attr:`status` the trainer set, e.g. ``interrupted`` when
    Lightning turned a Ctrl+C into SystemExit).

    ``run_dir`` None: the folder is known only once training has set up (ultralytics); call
    :meth:`attach` then, and nothing is written before. ``resumed_from``: the checkpoint this
    attempt continues; with it, a run.json already in the folder keeps its start and history."""

    def __init__(
        self,
        run_dir: Path | str | None,
        trainer: str,
        command: Iterable[str],
        arguments: Mapping[str, Any],
        dataset_path: Path | str,
        resumed_from: Path | str | None = None,
        dataset_files: Iterable[Path | str] | None = None,
    ) -> None:
        if trainer not in TRAINERS:
            raise ValueError(f"trainer {trainer!r}: one of {', '.join(TRAINERS)}")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.trainer = trainer
        self.command = [str(word) for word in command]
        self.arguments: dict[str, Any] = dict(arguments)
        self.dataset_path = Path(dataset_path)
        self.dataset_files = list(dataset_files) if dataset_files is not None else None
        self.resumed_from = str(resumed_from) if resumed_from is not None else None
        self.final_metrics: dict[str, Any] = {}
        self.status = "running"
        self.error: str | None = None
        self.started_at = self.ended_at = None
        self.dataset: dict[str, Any] | None = None
        self.versions: dict[str, str | None] = {}
        self.git: dict[str, Any] | None = None
        self._first_start: str | None = None
        self._earlier: list[dict[str, Any]] = []

    @property
    def path(self) -> Path | None:
        return self.run_dir / FILE_NAME if self.run_dir is not None else None

    def __enter__(self) -> RunRecord:
        self.started_at = now()
        self.dataset = dataset_fingerprint(self.dataset_path, self.dataset_files)
        self.versions = package_versions(self.trainer)
        self.git = source_git_state()
        if self.run_dir is not None:
            self.attach(self.run_dir)
        return self

    def attach(self, run_dir: Path | str) -> None:
        """The run's folder, now that it is known: read what an earlier attempt there recorded
        (when resuming) and write the record."""
        self.run_dir = Path(run_dir)
        self._first_start, self._earlier = None, []
        if self.resumed_from is not None:
            self._read_earlier()
        self.write()

    def _read_earlier(self) -> None:
        try:
            earlier = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(earlier, dict) or earlier.get("format") != FORMAT:
            return
        history = earlier.get("history")
        if not isinstance(history, list) or not history:
            history = [{k: earlier.get(k) for k in ("started_at", "ended_at", "status", "resumed_from")}]
        self._first_start = earlier.get("started_at") or history[0].get("started_at")
        self._earlier = [dict(attempt) for attempt in history if isinstance(attempt, dict)]

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.ended_at = now()
        if exc_type is None or (issubclass(exc_type, SystemExit) and exc.code in (0, None)):
            if self.status == "running":
                self.status = "finished"
        elif issubclass(exc_type, KeyboardInterrupt):
            self.status = "interrupted"
        elif self.status != "interrupted":
            self.status = "failed"
            self.error = f"{exc_type.__name__}: {str(exc).strip()}".splitlines()[0][:500].rstrip(": ")
        if self.run_dir is not None:
            try:
                self.write()
            except OSError as write_error:
                if exc_type is None:
                    raise
                log.warning("could not write %s: %s", self.path, write_error)  # the run's error wins
        return False

    def attempt(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "resumed_from": self.resumed_from,
        }

    def as_dict(self) -> dict[str, Any]:
        record = {
            "format": FORMAT,
            "trainer": self.trainer,
            "command": self.command,
            "arguments": jsonable(self.arguments),
            "dataset": self.dataset,
            "versions": self.versions,
            "git": self.git,
            "started_at": self._first_start or self.started_at,
            "ended_at": self.ended_at,
            "status": self.status,
            "resumed_from": self.resumed_from,
            "final_metrics": numbers(self.final_metrics),
            "run_dir": str(self.run_dir),
            "history": [*self._earlier, self.attempt()],
        }
        if self.error is not None:
            record["error"] = self.error
        return record

    def write(self) -> None:
        """run.json, atomically (a reader never sees half of it)."""
        if self.run_dir is None:
            raise ValueError("the run's folder is not known yet: attach() it first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.as_dict())
