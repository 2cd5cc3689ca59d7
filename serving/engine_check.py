"""What seg-serve warns about before it starts a server: TensorRT engines that will not load here."""

from __future__ import annotations

from pathlib import Path

from segcontract.engines import engine_models, local_gpus, local_tensorrt_version, mismatches, notes

DEFAULT_BACKENDS_DIR = Path("/opt/tritonserver/backends")  # the NGC tritonserver image


def server_backends(backend_dir: Path | None) -> set[str] | None:
    """Backends a tritonserver has (folder names); None when unknown."""
    folder = backend_dir or DEFAULT_BACKENDS_DIR
    if not folder.is_dir():
        return None
    return {p.name for p in folder.iterdir() if p.is_dir()}


def check_repository(repository: Path, backend_dir: Path | None = None) -> list[str]:
    """What seg-serve warns about before it starts a server on ``repository``."""
    models = engine_models(repository)
    if not models:
        return []
    gpus, version, backends = local_gpus(), local_tensorrt_version(), server_backends(backend_dir)
    return [line for m in models for line in (*mismatches(m, gpus, version, backends), *notes(m, gpus))]
