"""make demo and make bench load checkpoints through the guarded loader, as build-repo does."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.fixtures.hostile_checkpoints import write_hostile_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("step", ["val", "cocoeval", "parity"])
def test_the_demos_ultralytics_steps_refuse_a_hostile_checkpoint(step, tmp_path):
    from demo import run
    from model_checkpoints.ultralytics import UnsafeCheckpoint

    marker = tmp_path / "payload-ran"
    evil = write_hostile_checkpoint(tmp_path / "best.pt", marker)
    ground_truth = tmp_path / "gt.json"
    ground_truth.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    steps = {
        "val": lambda: run.ultralytics_val(evil, tmp_path / "data.yaml", 64),
        "cocoeval": lambda: run.ultralytics_predict_cocoeval(evil, tmp_path, ground_truth, 64),
        "parity": lambda: run.served_vs_predict_parity(evil, tmp_path, tmp_path, 64),
    }
    with pytest.raises(UnsafeCheckpoint, match="--trust-checkpoint"):
        steps[step]()
    assert not marker.exists(), "the checkpoint's payload ran"


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


@pytest.mark.parametrize("folder", ["demo", "benchmarks"])
def test_demo_and_benchmarks_never_unpickle_a_checkpoint_themselves(folder):
    """No torch.load, and YOLO(...) only on an exported model (ONNX, OpenVINO): a .pt goes through
    load_yolo."""
    for path in sorted((ROOT / folder).glob("*.py")):
        for call in _calls(path):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            assert not _name(call).endswith("torch.load"), where
            if _name(call).split(".")[-1] == "YOLO":
                exported = call.args and any(k in ast.unparse(call.args[0]) for k in ("onnx", "openvino"))
                assert exported, f"{where}: use load_yolo"


def test_the_benchmark_loads_its_pt_through_the_guarded_loader():
    assert "load_yolo" in {_name(call) for call in _calls(ROOT / "benchmarks" / "report.py")}
