"""``<name>_model`` for ``--runtime tensorrt``: the engine, its record, and its config.pbtxt."""

from __future__ import annotations

from builder import triton_config
from builder.errors import BuildError
from builder.exported_network import ExportedNetwork
from builder.model_folder import ModelFolder
from builder.tensorrt.engine_build import build_engine
from builder.tensorrt.image_feeds import ImageFeeds, image_files, rebatch
from builder.tensorrt.options import EngineOptions
from segcontract.engines import RECORD_FILE


def check_and_calibration_feeds(
    network: ExportedNetwork, options: EngineOptions
) -> tuple[list[dict], ImageFeeds | None]:
    """The engine check runs on ``--images`` (the first few) or else on the family's check scenes;
    int8 calibrates on every image of ``--images``. All batches have the profile's opt size."""
    (input_name,) = network.inputs  # every family serves a one-input network
    batch = options.profile.opt
    files = image_files(options.images) if options.images is not None else []
    if files:
        feeds = ImageFeeds(files, network.input_spec, input_name, batch, limit=options.check_images)
        check = list(feeds)
        if not check:
            first = "; ".join(f"{p.name}: {why}" for p, why in feeds.skipped[:3])
            raise BuildError(f"--images {options.images}: none of its images decodes ({first})")
    else:
        check = rebatch(network.samples, input_name, batch)
    calibration = None
    if options.precision == "int8" and files:
        calibration = ImageFeeds(files, network.input_spec, input_name, batch)
    return check, calibration


def engine_model_folder(
    settings: triton_config.ModelSettings, network: ExportedNetwork, options: EngineOptions
) -> ModelFolder:
    if settings.max_batch_size != options.profile.max:
        raise ValueError("max_batch_size must be the profile's max batch")
    check, calibration = check_and_calibration_feeds(network, options)
    plan = network.work_dir / "model.plan"
    calibration_cache = options.calibration_cache or network.work_dir / "calibration.cache"
    record, errors = build_engine(
        network.onnx_path,
        plan,
        network.inputs,
        options,
        check,
        calibration,
        calibration_cache,
        network.progress,
    )
    worst = ", ".join(f"{e.name} max abs {e.max_abs:.2g} (mean {e.mean_abs:.2g})" for e in errors)
    network.progress(f"engine matches onnxruntime: {worst}")
    if calibration is not None and calibration.skipped:
        network.progress(f"int8 calibration skipped {len(calibration.skipped)} undecodable images")
    record_path = network.work_dir / RECORD_FILE
    record_path.write_text(record.to_json())
    config = triton_config.tensorrt_model_config(
        triton_config.ModelSettings(
            settings.name,
            settings.inputs,
            settings.outputs,
            settings.max_batch_size,
            {**settings.parameters, **record.to_parameters()},
            settings.dynamic_batching,
            settings.instances,
        )
    )
    files = {"1/model.plan": plan, RECORD_FILE: record_path}
    if options.precision == "int8" and calibration_cache.is_file():
        files["calibration.cache"] = (
            calibration_cache  # pass it back with --calibration-cache to skip calibrating
        )
    return ModelFolder(settings.name, config, files=files)
