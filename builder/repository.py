"""Write model folders into a Triton model repository, replacing each one atomically.

Only folders build-repo wrote are ever replaced: each gets a marker file, and an existing folder
without one (a model the user wrote by hand, say) is refused before anything changes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import text_format

from builder import triton_config
from builder.errors import BuildError
from builder.model_folder import ModelFolder

MARKER = ".build-repo"


def _check_replaceable(target: Path) -> None:
    """Refuse to replace ``target`` unless it is missing, empty, or build-repo's own output."""
    if not target.exists() and not target.is_symlink():
        return
    real_folder = target.is_dir() and not target.is_symlink()
    if real_folder and ((target / MARKER).is_file() or not any(target.iterdir())):
        return
    raise BuildError(
        f"{target} exists and was not written by build-repo (no {MARKER} in it); nothing was changed: "
        "move it out of the repository, or choose another --name or --output"
    )


def check_destination(repository: Path, names: Sequence[str]) -> None:
    """Refuse, before any slow step (loading, ONNX export, the check against PyTorch), a build
    whose output it could not write: ``repository`` a file (or below one), a folder it may not
    write in, or a model folder of ``names`` there that build-repo did not write
    (:func:`_check_replaceable`). :func:`write_models` checks again when it writes."""
    repository = Path(repository)
    cannot = f"cannot write into --output {repository}"
    if repository.exists() and not repository.is_dir():
        raise BuildError(f"{cannot}: it is a file, not a folder; nothing was built")
    existing = next(p for p in (repository, *repository.absolute().parents) if p.exists() or p.is_symlink())
    if not existing.is_dir():
        raise BuildError(f"{cannot}: {existing} is not a folder; nothing was built")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BuildError(f"{cannot}: no permission to write in {existing}; nothing was built")
    for name in names:
        _check_replaceable(repository / name)


def _materialize(folder: ModelFolder, target: Path) -> None:
    (target / "1").mkdir(parents=True)  # every model, ensembles too, needs a version folder
    (target / MARKER).write_text("written by build-repo; a re-build replaces this folder whole\n")
    triton_config.write(folder.config, target)
    for rel, src in folder.dirs.items():
        shutil.copytree(src, target / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, src in folder.files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target / rel)
    for rel, text in folder.texts.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text, encoding="utf-8")


def _staging_parent(repository: Path) -> Path:
    """Beside the repository, so Triton never sees half-built models, when that is on the same
    filesystem and writable (rename is atomic only within a filesystem); else inside it, as a
    dot-folder (e.g. a repository that is a Docker volume's mount point)."""
    parent = repository.resolve().parent
    try:
        same_fs = parent.stat().st_dev == repository.stat().st_dev
    except OSError:
        same_fs = False
    return parent if same_fs and os.access(parent, os.W_OK) else repository


def orphaned_steps(repository: Path, folders: Sequence[ModelFolder]) -> list[str]:
    """The composing models of ensembles that ``folders`` replace and that are not among them
    (an ensemble re-built as one model): build-repo wrote them, for that ensemble alone."""
    new = {f.name for f in folders}
    steps = []
    for name in new:
        path = repository / name / "config.pbtxt"
        if not (repository / name / MARKER).is_file() or not path.is_file():
            continue
        try:
            old = triton_config.parse(path.read_text())
        except text_format.ParseError:  # not ours to judge: leave its steps alone
            continue
        steps += [
            s.model_name
            for s in old.ensemble_scheduling.step
            if s.model_name not in new and (repository / s.model_name / MARKER).is_file()
        ]
    return sorted(set(steps))


def write_models(repository: Path, folders: Sequence[ModelFolder]) -> list[Path]:
    """Build every folder in a staging directory, then swap each into place by rename; the steps
    of a replaced ensemble that the new models do without (:func:`orphaned_steps`) are taken
    out. Other models in the repository are left untouched; a failure puts back what was there."""
    repository = Path(repository)
    for folder in folders:
        _check_replaceable(repository / folder.name)
    orphans = orphaned_steps(repository, folders) if repository.is_dir() else []
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{repository.name}.build-", dir=_staging_parent(repository)))
    swapped: list[tuple[Path, Path | None]] = []  # (target, retired copy of what it replaced)
    try:
        for folder in folders:
            _materialize(folder, staging / folder.name)
        for folder in folders:
            target = repository / folder.name
            _check_replaceable(target)  # again: the build took a while
            retired = None
            if target.exists():
                retired = staging / f"{folder.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(retired)
            swapped.append((target, retired))
            (staging / folder.name).rename(target)
        for name in orphans:
            retired = staging / f"{name}.old-{uuid.uuid4().hex[:8]}"
            (repository / name).rename(retired)
            swapped.append((repository / name, retired))
    except BaseException:
        for target, retired in reversed(swapped):  # roll back the folders already swapped
            if target.exists():
                shutil.rmtree(target)
            if retired is not None and retired.exists():
                retired.rename(target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [repository / folder.name for folder in folders]
