"""Write model folders into a Triton model repository, replacing each one atomically."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from builder import triton_config
from builder.model_folder import ModelFolder


def _materialize(folder: ModelFolder, target: Path) -> None:
    (target / "1").mkdir(parents=True)  # every model, ensembles too, needs a version folder
    triton_config.write(folder.config, target)
    for rel, src in folder.dirs.items():
        shutil.copytree(src, target / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, src in folder.files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target / rel)


def write_models(repository: Path, folders: Sequence[ModelFolder]) -> list[Path]:
    """Build every folder in a staging directory beside the repository, then swap each into place
    by rename. Other models in the repository are left untouched; a failure leaves it as it was."""
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{repository.name}.build-", dir=repository.parent))
    written = []
    try:
        for folder in folders:
            _materialize(folder, staging / folder.name)
        for folder in folders:
            target = repository / folder.name
            if target.exists():
                retired = staging / f"{folder.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(retired)
            (staging / folder.name).rename(target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
