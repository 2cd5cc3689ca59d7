"""Image classification with timm networks, from `seg-train classify` checkpoints.

``<name>_model`` is the network followed by a softmax: its one output ``probabilities`` (float32,
one per class) is already the answer, so there is no postprocess model. Two ensembles serve it:

* ``<name>``: ``IMAGE`` → ``<name>_preprocess`` (python_backend_models/image_preprocess.py, the
  ``stretch`` resize and normalisation the checkpoint records) → ``<name>_model`` →
  ``probabilities`` and ``image_size``;
* ``<name>_segment`` (segcontract.tasks.segment_ensemble_name): ``IMAGE``, ``segment_box`` (xyxy,
  original pixels) and ``segment_mask`` (COCO compressed RLE counts at the image's size; empty:
  the whole box) → ``<name>_segment_preprocess`` (python_backend_models/segment_preprocess.py:
  segops.segment_crop.crop_segment with the record's ``segment_margin``, then the same
  preparation) → the same ``<name>_model`` → ``probabilities`` and ``image_size``.

Both ensembles' ``probabilities`` carry ``label_filename: "labels.txt"`` (the class names, one per
line, in the ensemble's folder), so Triton's classification extension answers a request for
``probabilities`` with ``class_count=k`` by the top k as "score:index:label" strings. The class
names are also in every config's record (``segstack_metadata``) and ``class_names`` parameter.
"""

from __future__ import annotations

import logging
from importlib import metadata as distributions
from pathlib import Path

import torch

from builder import triton_config
from builder.errors import BuildError
from builder.families.base import LoadedModel, RecordedInputFamily
from builder.families.pipeline import IMAGE_SIZE, identity_map, preprocess_config
from builder.model_folder import ModelFolder, python_backend_folder
from builder.quantization.agreement import Agreement, classifier_measure
from builder.settings import BuildSettings, LoadRequest
from model_checkpoints.classifier import load_network
from segcontract import tasks
from segcontract.checkpoint_formats import SEGMENT_MARGIN_KEY, SMP_FORMAT, CheckpointError
from segcontract.files import file_sha256
from segcontract.model_metadata import ModelMetadata
from segcontract.tasks import LABELS_FILE, PROBABILITIES_NAME, SEGMENT_BOX, SEGMENT_MASK, Task
from segcontract.tensors import TensorSpec
from segops.resize import InputSpec

INPUT_NAME = "input"

log = logging.getLogger("build-repo")


class _Probabilities(torch.nn.Module):
    """The network's logits through a softmax over the classes: what the server returns."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x), dim=1)


def _other_family_hint(path: Path) -> str | None:
    """The --model to use for a checkpoint of another segstack family, judged after a failed load."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if isinstance(payload, dict) and payload.get("format") == SMP_FORMAT:
        return f"{path}: a seg-train semantic (smp) checkpoint, not a seg-train classify one; use --model smp"
    return None


class ClassifierFamily(RecordedInputFamily):
    name = "classifier"
    task = Task.CLASSIFICATION
    model_names_help = "classifier (a seg-train classify checkpoint: any timm architecture)"

    def matches(self, model_name: str) -> bool:
        return model_name == "classifier" or model_name.startswith("classifier-")

    def load(self, request: LoadRequest) -> LoadedModel:
        if request.weights is None:
            raise BuildError(
                "--model classifier needs --weights CKPT (a checkpoint written by seg-train classify)"
            )
        try:
            info, network = load_network(request.weights, trust=request.trust_checkpoint)
        except CheckpointError as exc:
            raise BuildError(_other_family_hint(Path(request.weights)) or str(exc)) from None
        bad = [n for n in info.class_names if not n or "\n" in n or "\r" in n]
        if bad:  # labels.txt has one name per line
            raise BuildError(f"{request.weights}: class names must be one non-empty line each, not {bad!r}")
        width, height = request.size or ((request.imgsz,) * 2 if request.imgsz else info.input_size)
        if (width, height) != tuple(info.input_size):
            log.warning(
                "build-repo: warning: serving at %dx%d, but %s was trained at %dx%d (WxH): the served "
                "answers will differ from training's eval",
                width,
                height,
                request.weights,
                *info.input_size,
            )
        try:
            spec = InputSpec(height, width, info.resize, info.mean, info.std, "CHW")
        except ValueError as exc:
            raise BuildError(f"{request.weights}: {exc}") from None
        module = _Probabilities(network.eval()).eval()
        try:  # a network with a fixed input size (a ViT, say) refuses another one here, in one line
            with torch.no_grad():
                out = module(torch.zeros(1, 3, height, width))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BuildError(
                f"{info.arch} does not take {width}x{height} (WxH) inputs: {first[:200]}"
            ) from None
        if tuple(out.shape) != (1, info.num_classes):
            raise BuildError(f"{info.arch} returns {tuple(out.shape)}, not one score per class")
        return LoadedModel(
            module=module,
            class_names=list(info.class_names),
            input_size=(height, width),
            source=str(request.weights),
            input_names=[INPUT_NAME],
            output_names=[PROBABILITIES_NAME],
            input_spec=spec,
            versions=_timm_version(),
            weights_sha256=file_sha256(request.weights),
            extra={"arch": info.arch, SEGMENT_MARGIN_KEY: float(info.segment_margin)},
        )

    def int8_agreement(self, loaded, settings, inputs, fp32, int8) -> Agreement:
        return classifier_measure(inputs, fp32, int8)

    def folder_names(self, name: str, one_model: bool) -> list[str]:
        segment = tasks.segment_ensemble_name(name)
        return [name, f"{name}_preprocess", f"{name}_model", segment, f"{segment}_preprocess"]

    def server_models(self, loaded, model_io, settings: BuildSettings) -> list[ModelFolder]:
        metadata = self.metadata(loaded, settings)
        return classifier_ensembles(settings, model_io, metadata)


def classifier_ensembles(
    settings: BuildSettings,
    model_io: tuple[list[TensorSpec], list[TensorSpec]],
    metadata: ModelMetadata,
) -> list[ModelFolder]:
    """The two preprocess models and the two ensembles around ``<name>_model``."""
    name, segment = settings.name, tasks.segment_ensemble_name(settings.name)
    model_inputs, model_outputs = model_io
    probabilities = tasks.postprocess_outputs(Task.CLASSIFICATION, metadata.num_classes)[0]
    if [t.name for t in model_outputs] != [probabilities.name]:
        raise ValueError(f"the classifier's network returns {PROBABILITIES_NAME} only")
    image_inputs = tasks.ensemble_inputs(Task.CLASSIFICATION)
    segment_inputs = (*image_inputs, SEGMENT_BOX, SEGMENT_MASK)
    labels = "".join(f"{n}\n" for n in metadata.class_names)
    folders = []
    for ensemble_name, source, inputs in (
        (name, "image_preprocess", image_inputs),
        (segment, "segment_preprocess", segment_inputs),
    ):
        pre = preprocess_config(settings, f"{ensemble_name}_preprocess", inputs, model_inputs, metadata)
        ensemble = triton_config.ensemble_config(
            ensemble_name,
            inputs=inputs,
            outputs=tasks.ensemble_outputs(Task.CLASSIFICATION, metadata.num_classes),
            steps=[
                triton_config.EnsembleStep(
                    pre.name, identity_map(inputs), identity_map([model_inputs[0], IMAGE_SIZE])
                ),
                triton_config.EnsembleStep(
                    f"{name}_model", identity_map(model_inputs[:1]), identity_map([probabilities])
                ),
            ],
            max_batch_size=settings.max_batch_size,
            parameters=metadata.to_parameters(),
            label_files={probabilities.name: LABELS_FILE},
        )
        folders += [
            python_backend_folder(pre, source),
            ModelFolder(ensemble_name, ensemble, texts={LABELS_FILE: labels}),
        ]
    return folders


def _timm_version() -> dict[str, str]:
    try:
        return {"timm": distributions.version("timm")}
    except distributions.PackageNotFoundError:
        return {}
