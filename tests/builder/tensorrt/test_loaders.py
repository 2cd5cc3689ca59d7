"""The Polygraphy loader chain, profile and builder config that build-repo makes, checked without
TensorRT: Polygraphy's loaders only record their arguments until they are called."""

from pathlib import Path

import pytest
from polygraphy.backend.trt import (
    CreateConfig,
    EngineFromNetwork,
    NetworkFromOnnxPath,
    PostprocessConfig,
    SaveEngine,
)

from builder.errors import BuildError
from builder.tensorrt.loaders import WorkspaceLimit, engine_loaders, optimization_profile
from builder.tensorrt.options import (
    DEFAULT_TOLERANCES,
    BatchProfile,
    EngineOptions,
    default_timing_cache,
)


def _chain(options: EngineOptions, inputs=None, calibrator=None, cache=Path("/cache/t.cache")):
    inputs = inputs or {"images": (3, 320, 320)}
    save = engine_loaders(
        Path("/work/model.onnx"),
        Path("/work/model.plan"),
        inputs,
        options,
        cache,
        calibrator,
    )
    build = save._engine
    postprocess = build._config
    return save, build, build._network, postprocess, postprocess._config


def test_chain_is_network_config_engine_save():
    save, build, network, postprocess, config = _chain(EngineOptions("fp16", BatchProfile(1, 4, 8)))
    assert isinstance(save, SaveEngine) and save.path == "/work/model.plan"
    assert isinstance(build, EngineFromNetwork)
    assert isinstance(network, NetworkFromOnnxPath) and network.path == "/work/model.onnx"
    assert isinstance(postprocess, PostprocessConfig) and isinstance(config, CreateConfig)


def test_timing_cache_is_read_and_written_by_the_same_file(tmp_path):
    cache = tmp_path / "timing.cache"
    _, build, _, _, config = _chain(EngineOptions(), cache=cache)
    assert config.timing_cache_path is None  # the first build: nothing to read yet
    assert build.timing_cache_path == str(cache)  # EngineFromNetwork(save_timing_cache=...)
    cache.write_bytes(b"cache")
    _, build, _, _, config = _chain(EngineOptions(), cache=cache)
    assert (
        config.timing_cache_path == build.timing_cache_path == str(cache)
    )  # CreateConfig(load_timing_cache)


@pytest.mark.parametrize(
    ("precision", "fp16", "int8"), [("fp32", False, False), ("fp16", True, False), ("int8", True, True)]
)
def test_precision_flags(precision, fp16, int8, tmp_path):
    options = EngineOptions(precision, images=tmp_path)  # int8 needs calibration images
    *_, config = _chain(options, calibrator=object() if int8 else None)
    assert (config.fp16, config.int8, config.tf32) == (fp16, int8, False)
    assert (config.calibrator is not None) == int8


def test_profile_covers_the_batch_range_with_the_model_dims():
    *_, config = _chain(EngineOptions(profile=BatchProfile(2, 4, 16)), {"input_1": (256, 384, 3)})
    (profile,) = config.profiles
    shapes = profile["input_1"]
    assert (shapes.min, shapes.opt, shapes.max) == ((2, 256, 384, 3), (4, 256, 384, 3), (16, 256, 384, 3))


def test_profile_has_every_input():
    profile = optimization_profile({"a": (3, 8, 8), "b": (5,)}, BatchProfile(1, 1, 2))
    assert list(profile) == ["a", "b"]
    assert profile["b"].max == (2, 5)


def test_workspace_limit_is_applied_when_the_config_is_made():
    _, _, _, postprocess, _ = _chain(EngineOptions(workspace_gib=1.5))
    assert postprocess._func == WorkspaceLimit(int(1.5 * 2**30))


@pytest.mark.parametrize(("low", "opt", "high"), [(0, 1, 1), (2, 1, 4), (1, 8, 4)])
def test_bad_profiles_are_one_line_errors(low, opt, high):
    with pytest.raises(BuildError, match="--min-batch <= --opt-batch <= --max-batch"):
        BatchProfile(low, opt, high)


def test_int8_needs_calibration_data(tmp_path):
    with pytest.raises(BuildError, match="--images"):
        EngineOptions("int8")
    cache = tmp_path / "calibration.cache"
    cache.write_bytes(b"TRT-calibration")
    assert EngineOptions("int8", calibration_cache=cache).precision == "int8"


def test_tolerances_are_looser_for_reduced_precision():
    fp32, fp16, int8 = (DEFAULT_TOLERANCES[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.stat == "elemwise" and fp32.atol <= 1e-3
    assert fp32.atol < fp16.atol < int8.atol
    assert EngineOptions("fp16").check_tolerance == fp16


def test_default_timing_cache_is_per_tensorrt_and_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = default_timing_cache("10.5.0.18", "NVIDIA H100 80GB HBM3")
    assert a == tmp_path / "segstack" / "tensorrt" / "timing-10.5.0.18-NVIDIA-H100-80GB-HBM3.cache"
    assert a != default_timing_cache("10.5.0.18", "NVIDIA A10G")


def test_unwritable_timing_cache_falls_back_to_a_private_one(tmp_path):
    import os

    from builder.tensorrt.engine_build import writable_timing_cache

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "t.cache").write_bytes(b"root's cache")
    (shared / "t.cache").chmod(0o444)
    said = []
    chosen = writable_timing_cache(shared / "t.cache", said.append)
    if os.access(shared / "t.cache", os.W_OK):  # root may write anything: nothing to fall back from
        assert chosen == shared / "t.cache" and not said
    else:
        assert chosen != shared / "t.cache" and chosen.name == "t.cache" and "not writable" in said[0]
    assert writable_timing_cache(tmp_path / "new" / "t.cache", said.append) == tmp_path / "new" / "t.cache"
