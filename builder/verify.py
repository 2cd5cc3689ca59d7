"""Check an ONNX file against the PyTorch model it came from, on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from builder.errors import BuildError
from builder.settings import DEFAULT_ONNX_TOLERANCE


@dataclass
class Tolerance:
    atol: float = DEFAULT_ONNX_TOLERANCE
    rtol: float = DEFAULT_ONNX_TOLERANCE


@dataclass
class Comparison:
    name: str
    max_abs_diff: float
    ok: bool


def compare_outputs(
    expected: list[np.ndarray],
    actual: list[np.ndarray],
    names: list[str],
    tol: Tolerance,
    what: str = "ONNX",
) -> list[Comparison]:
    results = []
    for name, e, a in zip(names, expected, actual):
        if e.shape != a.shape:
            raise BuildError(f"{what} output {name} has shape {a.shape}, PyTorch gives {e.shape}")
        diff = np.abs(e.astype(np.float64) - a.astype(np.float64))
        ok = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(e)))
        results.append(Comparison(name, float(diff.max(initial=0.0)), ok))
    return results


def check_onnx_against_torch(
    onnx_path: Path,
    module: torch.nn.Module,
    inputs: list[np.ndarray],
    output_names: list[str],
    tol: Tolerance | None = None,
) -> list[Comparison]:
    """Run both on each input; raise BuildError naming the worst output when beyond tolerance."""
    return check_onnx(onnx_path, torch_outputs(module, inputs), inputs, output_names, tol)


def check_onnx(
    onnx_path: Path,
    reference: list[list[np.ndarray]],
    inputs: list[np.ndarray],
    output_names: list[str],
    tol: Tolerance | None = None,
) -> list[Comparison]:
    """The ONNX file run by onnxruntime on each input, checked against PyTorch's ``reference``
    outputs on them (:func:`torch_outputs`), as :func:`check_against_reference` checks."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    actual = [session.run(output_names, {input_name: x}) for x in inputs]
    return check_against_reference("ONNX model", reference, actual, output_names, tol or Tolerance())


def torch_outputs(module: torch.nn.Module, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """PyTorch's outputs on each input: the reference every runtime is checked against."""
    with torch.no_grad():
        return [
            [t.detach().cpu().numpy() for t in flatten_outputs(module(torch.from_numpy(x)))] for x in inputs
        ]


def check_against_reference(
    what: str,
    reference: list[list[np.ndarray]],
    actual: list[list[np.ndarray]],
    output_names: list[str],
    tol: Tolerance,
) -> list[Comparison]:
    """Per output, the largest difference over the inputs between ``actual`` (``what`` ran them)
    and PyTorch's ``reference``; raises BuildError naming the outputs beyond ``tol``."""
    per_input = [compare_outputs(e, a, output_names, tol, what) for e, a in zip(reference, actual)]
    worst = {  # per output: the largest difference over the inputs, failed if any input failed
        name: Comparison(name, max(c.max_abs_diff for c in cs), all(c.ok for c in cs))
        for name, cs in zip(output_names, zip(*per_input))
    }
    failed = [c for c in worst.values() if not c.ok]
    if failed:
        detail = ", ".join(f"{c.name} max abs diff {c.max_abs_diff:.3g}" for c in failed)
        raise BuildError(f"{what} differs from PyTorch beyond atol={tol.atol} rtol={tol.rtol}: {detail}")
    return list(worst.values())


def flatten_outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    flat: list[torch.Tensor] = []
    for item in out:
        flat.extend(flatten_outputs(item))
    return flat
