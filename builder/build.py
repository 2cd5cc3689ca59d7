"""The build pipeline behind ``build-repo``: one function, one step per stage."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from builder import families, graph_surgery, one_model, repository, triton_config, verify
from builder.exported_network import ExportedNetwork
from builder.onnx_export import DEFAULT_OPSET, export_onnx
from builder.options import BuildOptions
from builder.runtimes import io_specs
from segcontract.tensors import TensorSpec

log = logging.getLogger("build-repo")


@dataclass
class BuildResult:
    repository: Path
    models: list[Path]
    comparisons: list[verify.Comparison]
    seconds: float


def build_repository(
    opts: BuildOptions, progress: Callable[[str], None] = lambda message: None, opset: int = DEFAULT_OPSET
) -> BuildResult:
    start = time.monotonic()
    runtime = opts.runtime.make(opts.engine, opts.int8)
    opts.runtime.check_available()
    family = families.resolve(opts.model.request.model)
    settings = opts.settings()
    # the network takes any height and width only where the family can and the layout allows
    rect_axes = family.rect_axes if opts.runtime.rect_input else None
    request = replace(opts.model.request, rect=rect_axes is not None)
    one_model_build = bool(family.one_model_source and opts.runtime.folds_ensemble)
    # before the slow steps: a destination it may not write fails now, not after the export
    repository.check_destination(opts.output, family.folder_names(settings.name, one_model_build))
    progress(f"loading {request.weights or request.model} ({family.name})")
    loaded = family.load(request)
    samples = family.sample_inputs(loaded)
    with tempfile.TemporaryDirectory(prefix="build-repo-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        shape = f"{loaded.input_size[0]}x{loaded.input_size[1]}"
        if rect_axes:
            shape = f"up to {shape}, padded to stride {family.input_spec(loaded).stride}"
        progress(f"exporting ONNX (opset {opset}, input {shape})")
        export_onnx(
            loaded.module,
            torch.from_numpy(samples[0][:1]),
            onnx_path,
            loaded.input_names,
            loaded.output_names,
            opset,
            rect_axes,
        )
        with torch.no_grad():
            outputs = [
                t.numpy() for t in verify.flatten_outputs(loaded.module(torch.from_numpy(samples[0][:1])))
            ]
        output_shapes = {n: _dims(o.shape[1:], n, rect_axes) for n, o in zip(loaded.output_names, outputs)}
        counts = graph_surgery.fold_and_clean(onnx_path, output_shapes)
        progress(f"graph surgery: {counts['nodes_before']} → {counts['nodes_after']} nodes")
        reference = verify.torch_outputs(loaded.module, samples)  # every runtime's check
        comparisons = verify.check_onnx(
            onnx_path,
            reference,
            samples,
            loaded.output_names,
            verify.Tolerance(opts.model.atol, opts.model.rtol),
        )
        worst = ", ".join(f"{c.name} {c.max_abs_diff:.2g}" for c in comparisons)
        progress(f"ONNX matches PyTorch (max abs diff: {worst})")
        model_io = (
            _varying(io_specs(loaded.input_names, [samples[0][:1]]), rect_axes),
            _varying(io_specs(loaded.output_names, outputs), rect_axes),
        )
        model_settings = triton_config.ModelSettings(
            f"{settings.name}_model",
            *model_io,
            settings.max_batch_size,
            dynamic_batching=opts.batching.dynamic_batching(),
            instances=settings.instances,
            parameters=runtime.thread_parameters(opts.runtime.threads, settings.instances),
        )
        network = ExportedNetwork(
            onnx_path,
            {t.name: t.dims for t in model_io[0]},
            family.input_spec(loaded),
            samples,
            Path(tmp),
            progress,
            output_names=list(loaded.output_names),
            reference=reference,
            tolerance=(opts.model.atol, opts.model.rtol),
            agreement=partial(family.int8_agreement, loaded, settings) if opts.int8 else None,
            float_scope=family.int8_float_scope(loaded) if opts.int8 else [],
        )
        network_folder = runtime.model_folder(model_settings, network)
        loaded.extra.update(network_folder.record)  # into the record the server models carry
        folders = [network_folder, *family.server_models(loaded, model_io, settings)]
        if one_model_build:
            folders = [one_model.fold_ensemble(folders, settings.name, family.one_model_source)]
        written = repository.write_models(opts.output, folders)
    progress(f"wrote {', '.join(p.name for p in written)} into {opts.output}")
    return BuildResult(Path(opts.output), written, comparisons, time.monotonic() - start)


def _dims(shape: tuple[int, ...], name: str, axes: dict[str, dict[int, str]] | None) -> list[int | str]:
    """A tensor's shape without the batch, each axis of ``axes[name]`` by its name (dynamic)."""
    varying = (axes or {}).get(name, {})
    return [varying.get(axis, size) for axis, size in enumerate(shape, start=1)]


def _varying(specs: list[TensorSpec], axes: dict[str, dict[int, str]] | None) -> list[TensorSpec]:
    """``specs`` with -1 for the dims that vary (Triton's config for a dynamic axis)."""
    return [
        TensorSpec(
            s.name, s.dtype, tuple(d if isinstance(d, int) else -1 for d in _dims(s.dims, s.name, axes))
        )
        for s in specs
    ]
