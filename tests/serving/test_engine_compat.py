"""Engine records against the machine: which mismatches stop an engine from loading, and how
nvidia-smi / TensorRT versions are read."""

import json
import os
import stat

import pytest

from segcontract import engines as engine_compat
from segcontract.engines import EngineModel, EngineRecord, GpuInfo
from tests.helpers import ENGINE_RECORD, H100_GPU, write_engine_model

H100 = H100_GPU
H200 = GpuInfo("NVIDIA H200", "9.0")
L4 = GpuInfo("NVIDIA L4", "8.9")
RECORD = ENGINE_RECORD


def _model(record=RECORD):
    return EngineModel("seg_model", None, record)


def test_same_gpu_architecture_and_tensorrt_is_fine():
    assert engine_compat.mismatches(_model(), [H100], "10.5.0", {"tensorrt", "python"}) == []
    assert engine_compat.notes(_model(), [H100]) == []


def test_other_architecture_is_a_problem():
    (line,) = engine_compat.mismatches(_model(), [L4], "10.5.0.18")
    assert "compute capability 9.0" in line and "NVIDIA L4 (8.9)" in line and "rebuild" in line


def test_other_tensorrt_is_a_problem():
    (line,) = engine_compat.mismatches(_model(), [H100], "10.6.0")
    assert "TensorRT 10.5.0.18" in line and "10.6.0" in line


def test_same_architecture_other_gpu_is_a_note_not_a_problem():
    assert engine_compat.mismatches(_model(), [H200], None) == []
    (note,) = engine_compat.notes(_model(), [H200])
    assert "NVIDIA H200" in note and "same architecture" in note


def test_no_gpu_no_record_no_backend():
    assert "no NVIDIA GPU" in engine_compat.mismatches(_model(), [], None)[0]
    assert "no readable engine.json" in engine_compat.mismatches(_model(None), [H100], None)[0]
    lines = engine_compat.mismatches(_model(), [H100], None, backends={"python"})
    assert len(lines) == 1 and "no TensorRT backend" in lines[0] and "docker compose" in lines[0]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("10.5.0.18", "10.5.0", True),
        ("10.5.0", "10.5.0.18", True),
        ("10.5.0.18", "10.5.1", False),
        ("10.5.0.18", "10.5.0.20", False),
        ("8.6.1", "10.5.0", False),
    ],
)
def test_same_tensorrt(a, b, same):
    assert engine_compat.same_tensorrt(a, b) is same


def test_local_gpus_parses_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"  # nvidia-smi's CSV output, as a stand-in for the driver's tool
    fake.write_text("#!/bin/sh\nprintf 'NVIDIA H100 80GB HBM3, 9.0\\nNVIDIA L4, 8.9\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert engine_compat.local_gpus() == [H100, L4]


def test_local_gpus_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert engine_compat.local_gpus() == []


def test_tensorrt_version_from_the_ngc_environment(monkeypatch):
    """NGC images set TRT_VERSION; an installed tensorrt package takes precedence."""
    monkeypatch.setenv("TRT_VERSION", "10.5.0.18")
    found = engine_compat.local_tensorrt_version()
    try:
        import tensorrt
    except ImportError:
        assert found == "10.5.0.18"
    else:
        assert found == tensorrt.__version__


def test_engine_models_finds_plans_and_their_records(tmp_path):
    write_engine_model(tmp_path, "a")
    write_engine_model(tmp_path, "b", record=None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.pbtxt").write_text('name: "other"\nbackend: "python"\n')
    models = engine_compat.engine_models(tmp_path)
    assert [(m.name, m.record) for m in models] == [("a", RECORD), ("b", None)]


def test_unreadable_or_newer_records(tmp_path):
    path = tmp_path / "engine.json"
    path.write_text("{not json")
    assert EngineRecord.read(path) is None
    assert EngineRecord.read(tmp_path / "missing.json") is None
    newer = {**json.loads(RECORD.to_json()), "recorded_by": "a newer build-repo"}
    path.write_text(json.dumps(newer))
    assert EngineRecord.read(path) == RECORD


def test_local_gpus_asks_for_one_device(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"  # prints the GPU it was asked for with -i
    fake.write_text('#!/bin/sh\n[ "$1" = "-i" ] && echo "GPU $2, 8.9" || echo "all, 9.0"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert engine_compat.local_gpus(device="1") == [GpuInfo("GPU 1", "8.9")]
    assert engine_compat.local_gpus() == [GpuInfo("all", "9.0")]
