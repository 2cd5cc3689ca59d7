"""Polygraphy's loader chain for one engine: NetworkFromOnnxPath → CreateConfig → EngineFromNetwork
→ SaveEngine. Building the chain runs nothing; calling the last loader builds and saves the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polygraphy.backend.trt import (
    CreateConfig,
    EngineFromNetwork,
    NetworkFromOnnxPath,
    PostprocessConfig,
    Profile,
    SaveEngine,
)

from builder.tensorrt.options import BatchProfile, EngineOptions


@dataclass(frozen=True)
class WorkspaceLimit:
    """Sets the builder's workspace pool when the config is created (TensorRT is imported then,
    not when the chain is built: CreateConfig's own ``memory_pool_limits`` needs TensorRT's enum)."""

    bytes: int

    def __call__(self, builder, network, config) -> None:
        import tensorrt as trt

        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.bytes)


def optimization_profile(inputs: Mapping[str, tuple[int, ...]], batch: BatchProfile) -> Profile:
    """One profile: every input's batch dimension from ``batch``, its other dimensions fixed."""
    profile = Profile()
    for name, dims in inputs.items():
        low, opt, high = batch.shapes(tuple(dims))
        profile.add(name, min=low, opt=opt, max=high)
    return profile


def engine_config(
    inputs: Mapping[str, tuple[int, ...]],
    options: EngineOptions,
    timing_cache: Path,
    calibrator=None,
) -> PostprocessConfig:
    """The builder config: precision flags (int8 keeps fp16 for the layers it cannot quantise),
    the batch profile, the shared timing cache, and the workspace limit."""
    config = CreateConfig(
        fp16=options.precision in ("fp16", "int8"),
        int8=options.precision == "int8",
        profiles=[optimization_profile(inputs, options.profile)],
        calibrator=calibrator,
        # an absent cache is the first build's normal case, not worth Polygraphy's warning
        load_timing_cache=str(timing_cache) if timing_cache.is_file() else None,
    )
    return PostprocessConfig(config, WorkspaceLimit(options.workspace_bytes))


def engine_loaders(
    onnx_path: Path,
    plan_path: Path,
    inputs: Mapping[str, tuple[int, ...]],
    options: EngineOptions,
    timing_cache: Path,
    calibrator=None,
) -> SaveEngine:
    """The whole chain; ``engine_loaders(...)()`` builds the engine, saves it, and returns it."""
    network = NetworkFromOnnxPath(str(onnx_path))
    config = engine_config(inputs, options, timing_cache, calibrator)
    build = EngineFromNetwork(network, config=config, save_timing_cache=str(timing_cache))
    return SaveEngine(build, path=str(plan_path))
