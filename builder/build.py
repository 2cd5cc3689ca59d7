"""The build pipeline behind ``build-repo``: one function, one step per stage."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from builder import families, graph_surgery, repository, triton_config, verify
from builder.errors import BuildError
from builder.families import BuildSettings, LoadRequest
from builder.onnx_export import DEFAULT_OPSET, export_onnx
from builder.runtimes import ExportedNetwork, io_specs, make_runtime
from builder.tensorrt.options import BatchProfile, EngineOptions
from segcontract.limits import DEFAULT_MAX_PIXELS

log = logging.getLogger("build-repo")


@dataclass
class BuildOptions:
    model: str
    weights: Path | None = None
    output: Path = Path("model_repository")
    runtime: str = "python-onnx"
    imgsz: int | None = None
    name: str | None = None
    max_batch_size: int = 8
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    max_pixels: int = DEFAULT_MAX_PIXELS
    instances: int = 1
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    threads: int = 0  # intra-op threads of the network's session; 0 = the runtime's default (all cores)
    size: tuple[int, int] | None = None  # (width, height)
    nhwc: bool = False
    arch: str | None = None
    encoder: str | None = None
    trust_checkpoint: bool = False
    opset: int = DEFAULT_OPSET
    tolerance: verify.Tolerance = field(default_factory=verify.Tolerance)
    engine: EngineOptions | None = (
        None  # --fp16/--int8, batch profile, workspace...: tensorrt, --onnx-tensorrt
    )
    onnx_tensorrt: bool = False  # --runtime onnx with onnxruntime's TensorRT execution accelerator


@dataclass
class BuildResult:
    repository: Path
    models: list[Path]
    comparisons: list[verify.Comparison]
    seconds: float


def build_repository(opts: BuildOptions, progress=lambda message: None) -> BuildResult:
    start = time.monotonic()
    engine = opts.engine
    if opts.runtime == "tensorrt" or opts.onnx_tensorrt:
        engine = engine or EngineOptions(profile=BatchProfile(1, opts.max_batch_size, opts.max_batch_size))
        if engine.profile.max != opts.max_batch_size:
            raise BuildError(
                f"the engine's max batch {engine.profile.max} must be --max-batch-size {opts.max_batch_size}"
            )
    runtime = make_runtime(opts.runtime, engine, opts.onnx_tensorrt)
    runtime.check_available()
    too_big = [b for b in opts.preferred_batch_sizes if b > opts.max_batch_size]
    if too_big:
        raise BuildError(f"--preferred-batch-sizes {too_big} exceed --max-batch-size {opts.max_batch_size}")
    family = families.resolve(opts.model)
    settings = BuildSettings(
        name=opts.name or opts.model,
        max_batch_size=opts.max_batch_size,
        conf=opts.conf,
        iou=opts.iou,
        max_det=opts.max_det,
        max_pixels=opts.max_pixels,
        instances=opts.instances,
        max_queue_delay_us=opts.max_queue_delay_us,
    )
    progress(f"loading {opts.weights or opts.model} ({family.name})")
    loaded = family.load(
        LoadRequest(
            opts.model,
            opts.weights,
            opts.imgsz,
            opts.size,
            opts.nhwc,
            opts.arch,
            opts.encoder,
            opts.trust_checkpoint,
        )
    )
    samples = family.sample_inputs(loaded)
    with tempfile.TemporaryDirectory(prefix="build-repo-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        progress(f"exporting ONNX (opset {opts.opset}, input {loaded.input_size[0]}x{loaded.input_size[1]})")
        export_onnx(
            loaded.module,
            torch.from_numpy(samples[0][:1]),
            onnx_path,
            loaded.input_names,
            loaded.output_names,
            opts.opset,
        )
        with torch.no_grad():
            outputs = [
                t.numpy() for t in verify.flatten_outputs(loaded.module(torch.from_numpy(samples[0][:1])))
            ]
        output_shapes = {n: o.shape[1:] for n, o in zip(loaded.output_names, outputs)}
        counts = graph_surgery.fold_and_clean(onnx_path, output_shapes)
        progress(f"graph surgery: {counts['nodes_before']} → {counts['nodes_after']} nodes")
        comparisons = verify.check_onnx_against_torch(
            onnx_path, loaded.module, samples, loaded.output_names, opts.tolerance
        )
        worst = ", ".join(f"{c.name} {c.max_abs_diff:.2g}" for c in comparisons)
        progress(f"ONNX matches PyTorch (max abs diff: {worst})")
        model_io = (io_specs(loaded.input_names, [samples[0][:1]]), io_specs(loaded.output_names, outputs))
        model_settings = triton_config.ModelSettings(
            f"{settings.name}_model",
            *model_io,
            settings.max_batch_size,
            dynamic_batching=triton_config.DynamicBatching(
                opts.max_queue_delay_us, opts.preferred_batch_sizes
            ),
            instances=settings.instances,
            parameters=runtime.thread_parameters(opts.threads),
        )
        network = ExportedNetwork(
            onnx_path,
            {t.name: t.dims for t in model_io[0]},
            family.input_spec(loaded),
            samples,
            Path(tmp),
            progress,
        )
        folders = [
            runtime.model_folder(model_settings, network),
            *family.server_models(loaded, model_io, settings),
        ]
        written = repository.write_models(opts.output, folders)
    progress(f"wrote {', '.join(p.name for p in written)} into {opts.output}")
    return BuildResult(Path(opts.output), written, comparisons, time.monotonic() - start)
