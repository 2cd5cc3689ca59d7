"""The ensemble every family serves: ``<name>_preprocess`` (image file → model input, see
segops/resize.py) → ``<name>_model`` → ``<name>_postprocess`` (family-specific) → outputs.

The ensemble's inputs and outputs are its task's (segcontract.tasks); the model record
(segcontract.model_metadata) goes into the ensemble and both Python-backend steps, which read
their input spec, thresholds and pixel limit from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from builder import triton_config
from builder.model_folder import ModelFolder, python_backend_folder
from builder.settings import BuildSettings
from segcontract import tasks
from segcontract.model_metadata import METADATA_KEY, ConfigKeys, ModelMetadata
from segcontract.tensors import TensorSpec

IMAGE = tasks.IMAGE
IMAGE_SIZE = tasks.IMAGE_SIZE


def identity_map(specs: Sequence[TensorSpec]) -> dict[str, str]:
    return {t.name: t.name for t in specs}


def preprocess_config(
    settings: BuildSettings,
    model_name: str,
    inputs: Sequence[TensorSpec],
    model_inputs: Sequence[TensorSpec],
    metadata: ModelMetadata,
) -> triton_config.mc.ModelConfig:
    """A Python-backend step that takes ``inputs`` (the encoded image, and whatever else it reads)
    and fills the network's one input and ``image_size``, reading the record."""
    if len(model_inputs) != 1:
        raise ValueError("the preprocess model feeds exactly one network input")
    return triton_config.python_model_config(
        triton_config.ModelSettings(
            model_name,
            inputs,
            [*model_inputs, IMAGE_SIZE],
            settings.max_batch_size,
            {
                **metadata.input.to_parameters(),
                ConfigKeys.OUTPUT_NAME: model_inputs[0].name,
                ConfigKeys.MAX_PIXELS: metadata.max_pixels,
                METADATA_KEY: metadata.to_json(),
            },
            triton_config.DynamicBatching(settings.max_queue_delay_us),
            settings.instances,
        )
    )


def three_step_ensemble(
    settings: BuildSettings,
    model_io: tuple[Sequence[TensorSpec], Sequence[TensorSpec]],
    metadata: ModelMetadata,
    postprocess_source: str,
    postprocess_parameters: Mapping[str, object],
    ensemble_parameters: Mapping[str, object] | None = None,
) -> list[ModelFolder]:
    """``postprocess_parameters``: the postprocess model's own keys (besides the record);
    ``ensemble_parameters``: more individual parameters for operators."""
    name = settings.name
    model_inputs, model_outputs = model_io
    if len(model_inputs) != 1:
        raise ValueError("the preprocess model feeds exactly one network input")
    inputs = tasks.ensemble_inputs(metadata.task)
    outputs = tasks.postprocess_outputs(metadata.task, metadata.num_classes)
    record = {METADATA_KEY: metadata.to_json()}
    spec_parameters = metadata.input.to_parameters()
    batching = triton_config.DynamicBatching(settings.max_queue_delay_us)
    pre = preprocess_config(settings, f"{name}_preprocess", inputs, model_inputs, metadata)
    post = triton_config.python_model_config(
        triton_config.ModelSettings(
            f"{name}_postprocess",
            [*model_outputs, IMAGE_SIZE],
            outputs,
            settings.max_batch_size,
            {**spec_parameters, **postprocess_parameters, **record},
            batching,
            settings.instances,
        )
    )
    ensemble = triton_config.ensemble_config(
        name,
        inputs=inputs,
        outputs=tasks.ensemble_outputs(metadata.task, metadata.num_classes),
        steps=[
            triton_config.EnsembleStep(
                pre.name, identity_map(inputs), {**identity_map(model_inputs), **identity_map([IMAGE_SIZE])}
            ),
            triton_config.EnsembleStep(
                f"{name}_model", identity_map(model_inputs), identity_map(model_outputs)
            ),
            triton_config.EnsembleStep(
                post.name,
                {**identity_map(model_outputs), **identity_map([IMAGE_SIZE])},
                identity_map(outputs),
            ),
        ],
        max_batch_size=settings.max_batch_size,
        parameters={**metadata.to_parameters(), **(ensemble_parameters or {})},
    )
    return [
        python_backend_folder(pre, "image_preprocess"),
        python_backend_folder(post, postprocess_source),
        ModelFolder(name, ensemble),
    ]
