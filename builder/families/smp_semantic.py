"""Semantic segmentation with segmentation-models-pytorch, from `seg-train semantic` checkpoints."""

from __future__ import annotations

from importlib import metadata as distributions

import torch

from builder.errors import BuildError
from builder.families.base import LoadedModel, RecordedInputFamily
from builder.families.pipeline import three_step_ensemble
from builder.model_folder import ModelFolder
from builder.quantization.agreement import Agreement, semantic_measure
from builder.settings import BuildSettings, LoadRequest
from model_checkpoints.classifier import read_checkpoint as read_classifier_checkpoint
from model_checkpoints.smp import CheckpointError, build_model, load_checkpoint
from segcontract.files import file_sha256
from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import Task
from segops.resize import InputSpec


class _Logits(torch.nn.Module):
    """The network; with ``nhwc`` it takes NHWC input (the seeds' ``input_1``) and transposes inside."""

    def __init__(self, model: torch.nn.Module, nhwc: bool):
        super().__init__()
        self.model, self.nhwc = model, nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2) if self.nhwc else x)


LOGITS = "logits"  # the network's output, as the postprocess model reads it


def _nearest_multiple(value: int, stride: int) -> int:
    return max(stride, round(value / stride) * stride)


class SmpSemanticFamily(RecordedInputFamily):
    name = "smp"
    task = Task.SEMANTIC
    model_names_help = "smp (a seg-train semantic checkpoint: any segmentation-models-pytorch architecture)"

    def matches(self, model_name: str) -> bool:
        return model_name == "smp" or model_name.startswith("smp-")

    def load(self, request: LoadRequest) -> LoadedModel:
        if request.weights is None:
            raise BuildError("--model smp needs --weights CKPT (a checkpoint written by seg-train semantic)")
        try:
            info, payload = load_checkpoint(request.weights, trust=request.trust_checkpoint)
            info.arch = request.arch or info.arch
            info.encoder = request.encoder or info.encoder
            model = build_model(info)
            model.load_state_dict(payload["state_dict"])
        except CheckpointError as exc:
            raise BuildError(_classifier_hint(request.weights) or str(exc)) from None
        except RuntimeError as exc:  # state_dict does not fit the (overridden) architecture
            first = str(exc).splitlines()[0]
            raise BuildError(
                f"{request.weights}: weights do not fit {info.arch}/{info.encoder} ({first})"
            ) from None
        width, height = request.size or ((request.imgsz,) * 2 if request.imgsz else info.input_size)
        stride = int(getattr(model.encoder, "output_stride", 32))
        if width % stride or height % stride:  # also what TensorRT and the seeds' trtexec commands expect
            w2, h2 = _nearest_multiple(width, stride), _nearest_multiple(height, stride)
            raise BuildError(
                f"input size {width}x{height} (WxH) is not divisible by {stride}, the output stride of the "
                f"{info.encoder} encoder; use multiples of {stride}, e.g. --size {w2} {h2}"
            )
        module = _Logits(model.eval(), request.nhwc).eval()
        return LoadedModel(
            module=module,
            class_names=list(info.class_names),
            input_size=(height, width),
            source=str(request.weights),
            input_names=["input_1" if request.nhwc else "input"],
            output_names=[LOGITS],
            input_spec=InputSpec(
                height, width, "stretch", info.mean, info.std, "HWC" if request.nhwc else "CHW"
            ),
            colors=[list(c) for c in info.colors],
            versions=_smp_version(),
            weights_sha256=file_sha256(request.weights),
            extra={"arch": info.arch, "encoder": info.encoder},
        )

    def int8_agreement(self, loaded, settings, inputs, fp32, int8) -> Agreement:
        return semantic_measure(inputs, fp32, int8)

    def server_models(self, loaded, model_io, settings: BuildSettings) -> list[ModelFolder]:
        metadata = self.metadata(loaded, settings)
        spec = metadata.input
        return three_step_ensemble(
            settings,
            model_io,
            metadata,
            "semantic_postprocess",
            {
                ConfigKeys.NUM_CLASSES: metadata.num_classes,
                ConfigKeys.LOGITS_NAME: LOGITS,
                ConfigKeys.LOGITS_LAYOUT: "CHW",  # the network's output; only its input may be NHWC
            },
            # what earlier build-repos wrote; the record carries them as numbers
            {"mean_rgb": ",".join(map(str, spec.mean)), "std_rgb": ",".join(map(str, spec.std))},
        )


def _classifier_hint(path) -> str | None:
    """For a seg-train classify checkpoint given to --model smp: the --model it needs."""
    try:
        read_classifier_checkpoint(path)
    except CheckpointError:
        return None
    return f"{path}: a seg-train classify checkpoint, not a seg-train semantic one; use --model classifier"


def _smp_version() -> dict[str, str]:
    try:
        return {"segmentation_models_pytorch": distributions.version("segmentation-models-pytorch")}
    except distributions.PackageNotFoundError:
        return {}
