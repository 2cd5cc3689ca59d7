"""One model folder of a Triton repository, described before it is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

import python_backend_models


@dataclass
class ModelFolder:
    """``files``/``dirs`` map a path inside the folder (``1/model.onnx``) to the source to copy;
    ``texts`` a path inside the folder to the text written there (``labels.txt``); ``record`` what
    the folder adds to the model's record (segcontract.model_metadata ``extra``: its precision)."""

    name: str
    config: mc.ModelConfig
    files: dict[str, Path] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    record: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.config.name != self.name:
            raise ValueError(f"config name {self.config.name!r} differs from folder {self.name!r}")


def python_backend_folder(
    config: mc.ModelConfig, model_source: str, extra_files: dict[str, Path] | None = None
) -> ModelFolder:
    """A Python-backend model: ``python_backend_models/<model_source>.py`` as ``1/model.py``, with
    the packages it imports beside it."""
    files = {"1/model.py": python_backend_models.model_source(model_source), **(extra_files or {})}
    dirs = {f"1/{name}": folder for name, folder in python_backend_models.SHARED_PACKAGES.items()}
    return ModelFolder(config.name, config, files=files, dirs=dirs)
