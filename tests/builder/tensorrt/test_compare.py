"""The engine check's Comparator wiring, run for real with two onnxruntime runners (the engine's
place is taken by a second ONNX file): equal models pass, a perturbed output fails by name."""

import numpy as np
import pytest
import torch

from builder.errors import BuildError
from builder.tensorrt.compare import compare_runners, onnxruntime_reference
from builder.tensorrt.options import EngineTolerance


class _TwoHeads(torch.nn.Module):
    def __init__(self, shift: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.shift = shift

    def forward(self, x):
        y = self.conv(x)
        return y.mean(dim=(2, 3)), y + self.shift


def _onnx(path, shift=0.0):
    torch.onnx.export(
        _TwoHeads(shift).eval(),
        torch.zeros(1, 3, 16, 16),
        str(path),
        input_names=["images"],
        output_names=["pooled", "maps"],
        dynamic_axes={"images": {0: "batch"}},
        dynamo=False,
    )
    return path


@pytest.fixture
def feeds():
    rng = np.random.default_rng(0)
    return [{"images": rng.random((2, 3, 16, 16), dtype=np.float32)} for _ in range(3)]


def test_same_model_passes(tmp_path, feeds):
    path = _onnx(tmp_path / "a.onnx")
    errors = compare_runners(
        onnxruntime_reference(path), onnxruntime_reference(path), feeds, EngineTolerance(1e-5, 1e-5)
    )
    assert {e.name for e in errors} == {"pooled", "maps"}
    assert all(e.passed and e.max_abs == 0 for e in errors)


def test_output_beyond_tolerance_fails_by_name(tmp_path, feeds):
    reference = onnxruntime_reference(_onnx(tmp_path / "a.onnx"))
    candidate = onnxruntime_reference(_onnx(tmp_path / "b.onnx", shift=0.5))
    with pytest.raises(BuildError, match=r"maps \(max abs 0.5") as err:
        compare_runners(candidate, reference, feeds, EngineTolerance(1e-2, 1e-2, "mean"))
    assert "pooled" not in str(err.value).split(":", 1)[1]  # pooled is unaffected by the shift


def test_mean_statistic_is_looser_than_elemwise(tmp_path, feeds):
    reference = onnxruntime_reference(_onnx(tmp_path / "a.onnx"))
    candidate = onnxruntime_reference(_onnx(tmp_path / "b.onnx", shift=1e-3))
    compare_runners(candidate, reference, feeds, EngineTolerance(2e-3, 0, "mean"))
    with pytest.raises(BuildError):
        compare_runners(candidate, reference, feeds, EngineTolerance(1e-4, 0, "elemwise"))


def test_no_feeds_is_an_error(tmp_path):
    runner = onnxruntime_reference(_onnx(tmp_path / "a.onnx"))
    with pytest.raises(BuildError, match="no inputs"):
        compare_runners(runner, runner, [], EngineTolerance(1e-3, 1e-3))
