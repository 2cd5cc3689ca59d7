"""The ensemble every family serves: ``<name>_preprocess`` (image file → model input, see
segops/resize.py) → ``<name>_model`` → ``<name>_postprocess`` (family-specific) → outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from builder import triton_config
from builder.families.base import BuildSettings
from builder.model_folder import ModelFolder, python_backend_folder
from segcontract.tensors import TensorSpec
from segops.resize import InputSpec

IMAGE = TensorSpec("IMAGE", "bytes", (1,))
IMAGE_SIZE = TensorSpec("image_size", "int32", (2,))


def three_step_ensemble(
    settings: BuildSettings,
    model_io: tuple[Sequence[TensorSpec], Sequence[TensorSpec]],
    input_spec: InputSpec,
    postprocess_source: str,
    postprocess_outputs: Sequence[TensorSpec],
    postprocess_parameters: Mapping[str, object],
    ensemble_parameters: Mapping[str, object],
) -> list[ModelFolder]:
    name = settings.name
    model_inputs, model_outputs = model_io
    if len(model_inputs) != 1:
        raise ValueError("the preprocess model feeds exactly one network input")
    batching = triton_config.DynamicBatching(settings.max_queue_delay_us)
    pre = triton_config.python_model_config(
        triton_config.ModelSettings(
            f"{name}_preprocess",
            [IMAGE],
            [*model_inputs, IMAGE_SIZE],
            settings.max_batch_size,
            {
                **input_spec.to_parameters(),
                "output_name": model_inputs[0].name,
                "max_pixels": settings.max_pixels,
            },
            batching,
            settings.instances,
        )
    )
    post = triton_config.python_model_config(
        triton_config.ModelSettings(
            f"{name}_postprocess",
            [*model_outputs, IMAGE_SIZE],
            postprocess_outputs,
            settings.max_batch_size,
            {**input_spec.to_parameters(), **postprocess_parameters},
            batching,
            settings.instances,
        )
    )
    ensemble = triton_config.ensemble_config(
        name,
        inputs=[IMAGE],
        outputs=[*postprocess_outputs, IMAGE_SIZE],
        steps=[
            triton_config.EnsembleStep(
                pre.name,
                {"IMAGE": "IMAGE"},
                {**{t.name: t.name for t in model_inputs}, "image_size": "image_size"},
            ),
            triton_config.EnsembleStep(
                f"{name}_model",
                {t.name: t.name for t in model_inputs},
                {t.name: t.name for t in model_outputs},
            ),
            triton_config.EnsembleStep(
                post.name,
                {**{t.name: t.name for t in model_outputs}, "image_size": "image_size"},
                {t.name: t.name for t in postprocess_outputs},
            ),
        ],
        max_batch_size=settings.max_batch_size,
        parameters={**input_spec.to_parameters(), **ensemble_parameters},
    )
    return [
        python_backend_folder(pre, "image_preprocess"),
        python_backend_folder(post, postprocess_source),
        ModelFolder(name, ensemble),
    ]
