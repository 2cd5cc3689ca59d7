"""What the build hands a runtime: the checked ONNX network and how it is fed.

Its own module so that the runtimes (``builder.runtimes``) and the folders they write
(``builder.tensorrt.runtime_folder``) both import it and neither imports the other back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builder.quantization.agreement import Measure
from segops.resize import InputSpec


@dataclass
class ExportedNetwork:
    """What a runtime turns into ``<name>_model``: the checked ONNX file and how it is fed."""

    onnx_path: Path
    inputs: dict[str, tuple[int, ...]]  # input name → dimensions without the batch
    input_spec: InputSpec  # how the server's preprocess model prepares an image for it
    samples: list[np.ndarray]  # prepared inputs (the family's check scenes)
    work_dir: Path  # scratch space that lives until the repository is written
    progress: Callable[[str], None] = lambda message: None
    output_names: list[str] = field(default_factory=list)
    reference: list[list[np.ndarray]] = field(default_factory=list)  # PyTorch's outputs on ``samples``
    tolerance: tuple[float, float] = (1e-3, 1e-3)  # (atol, rtol) of the check against ``reference``
    agreement: Measure | None = None  # the family's measure for the INT8 guard (None: none)
    float_scope: list[str] = field(default_factory=list)  # node-name patterns INT8 leaves in float
