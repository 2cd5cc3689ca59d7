"""YOLOv8-seg (and YOLO11-seg) instance segmentation from ultralytics checkpoints."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from builder.errors import BuildError
from builder.families.base import LoadedModel, ModelFamily
from builder.families.pipeline import three_step_ensemble
from builder.model_folder import ModelFolder
from builder.probe_images import probe_images
from builder.quantization.agreement import Agreement, instance_measure
from builder.settings import BuildSettings, LoadRequest
from model_checkpoints import ultralytics as ultralytics_checkpoint
from segcontract.checkpoint_formats import CLASSIFIER_FORMAT
from segcontract.checkpoint_formats import SMP_FORMAT as SEMANTIC_FORMAT
from segcontract.files import file_sha256
from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import Task
from segops.letterbox import letterbox, to_model_input
from segops.resize import InputSpec

NAME_PATTERN = re.compile(r"^yolo(v8|11)[nsmlx]-seg$")


def _checkpoint_path(model_name: str, weights: Path | None) -> Path:
    """The local file to load: ``--weights``, else ultralytics' pretrained weights (downloaded)."""
    if weights is not None:
        if not Path(weights).is_file():
            raise BuildError(f"{weights}: no such file; --weights takes a YOLOv8-seg .pt checkpoint")
        return Path(weights)
    from ultralytics.utils.downloads import attempt_download_asset

    try:
        path = Path(attempt_download_asset(f"{model_name}.pt"))
    except Exception:
        path = Path(f"{model_name}.pt")
    if not path.is_file():
        raise BuildError(
            f"could not get pretrained {model_name}.pt (no internet?); "
            "pass --weights PATH to a local checkpoint"
        )
    return path


def _load_ultralytics(
    model_name: str, weights: Path | None, trust: bool
) -> tuple[torch.nn.Module, str, dict, Path]:
    """(model, task, class names, file) of an ultralytics checkpoint, loaded without running code
    from it unless ``trust`` (see :mod:`model_checkpoints.ultralytics`)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.nn.tasks import guess_model_task

    path = _checkpoint_path(model_name, weights)
    try:
        ckpt = ultralytics_checkpoint.load(path, trust=trust)
    except (ultralytics_checkpoint.UnsafeCheckpoint, ultralytics_checkpoint.UnreadableCheckpoint) as exc:
        raise BuildError(str(exc)) from None
    except Exception as exc:  # --trust-checkpoint: the full unpickler raises anything
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"{path}: not a loadable ultralytics checkpoint ({reason[:200]})") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == SEMANTIC_FORMAT:
        raise BuildError(f"{path}: a seg-train semantic (smp) checkpoint; use --model smp")
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if isinstance(hparams, dict) and hparams.get("format") == CLASSIFIER_FORMAT:
        raise BuildError(f"{path}: a seg-train classify checkpoint; use --model classifier")
    net = ultralytics_checkpoint.model_of(ckpt)
    if net is None:
        raise BuildError(f"{path}: not an ultralytics checkpoint (no model in it); --weights takes YOLO .pt")
    # what ultralytics' own loader does after unpickling: training arguments, old-torch fix-ups
    net.args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
    if not hasattr(net, "stride"):
        net.stride = torch.tensor([32.0])
    for m in net.modules():
        if isinstance(m, torch.nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
    task = getattr(net, "task", None) or guess_model_task(net)
    return net, task, net.names, path


class _ExportHead(torch.nn.Module):
    """The detection model with its head in export mode: returns (output0, output1)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        output0, output1 = self.model(images)
        return output0, output1


def box_decoding_scope(head_index: int) -> list[str]:
    """The node-name patterns of the box decoding in the head ``model.<head_index>`` (the last
    module): what INT8 leaves in floating point (also what ``build-repo tune`` leaves there)."""
    head = re.escape(f"model.{head_index}")
    return [f".*/{head}/dfl/.*", f".*/{head}/(Add|Sub|Mul|Div|Sigmoid)(_\\d+)?$"]


class YoloSegFamily(ModelFamily):
    name = "yolov8-seg"
    task = Task.INSTANCE
    model_names_help = "yolov8{n,s,m,l,x}-seg or yolo11{n,s,m,l,x}-seg"
    one_model_source = "yolo_seg_pipeline"
    rect_axes: ClassVar[dict[str, dict[int, str]]] = {
        "images": {2: "height", 3: "width"},
        "output0": {2: "anchors"},
        "output1": {2: "mask_height", 3: "mask_width"},
    }

    def matches(self, model_name: str) -> bool:
        return bool(NAME_PATTERN.match(model_name))

    def load(self, request: LoadRequest) -> LoadedModel:
        model_name, weights, imgsz = request.model, request.weights, request.imgsz
        from ultralytics import __version__ as ultralytics_version
        from ultralytics.nn.modules import C2f, Detect

        net, task, names, path = _load_ultralytics(model_name, weights, request.trust_checkpoint)
        if task != "segment":
            raise BuildError(f"{weights or model_name}: a {task} model, not segment; use a -seg checkpoint")
        net = copy.deepcopy(net).float().eval()
        if getattr(net, "end2end", False):
            raise BuildError(f"{weights or model_name}: end-to-end (NMS-free) heads are not supported yet")
        for p in net.parameters():
            p.requires_grad = False
        net = net.fuse()
        stride = int(max(net.stride.max().item(), 32))
        size = imgsz or int((getattr(net, "args", None) or {}).get("imgsz", 640) or 640)
        if size % stride:
            raise BuildError(f"--imgsz {size} is not a multiple of the model stride {stride}")
        for m in net.modules():
            if isinstance(m, Detect):
                # dynamic: anchors worked out from each input's shape, not traced as constants
                m.export, m.format, m.dynamic, m.shape = True, "onnx", request.rect, None
            elif isinstance(m, C2f):
                m.forward = m.forward_split  # ONNX-friendlier, as ultralytics' exporter does
        class_names = [str(names[i]) for i in range(len(names))]
        return LoadedModel(
            module=_ExportHead(net).eval(),
            class_names=class_names,
            input_size=(size, size),
            source=str(weights or f"{model_name}.pt"),
            input_names=["images"],
            output_names=["output0", "output1"],
            versions={"ultralytics": ultralytics_version},
            weights_sha256=file_sha256(path),
            input_spec=InputSpec(size, size, "letterbox", stride=stride if request.rect else None),
            extra={"stride": stride},
        )

    def input_spec(self, loaded: LoadedModel) -> InputSpec:
        return loaded.input_spec or InputSpec(*loaded.input_size, "letterbox")

    def sample_inputs(self, loaded: LoadedModel) -> list[np.ndarray]:
        """Probe images letterboxed as the server feeds the model (see :mod:`builder.probe_images`):
        to the square, a batch of two and one; where the network takes any height and width, also
        each of them padded only to the stride (480×640 and 640×448, height × width, at 640)."""
        h, w = loaded.input_size
        images = probe_images([(h * 3 // 4, w), (h, w * 2 // 3), (h // 2, w // 2)])
        batch = [to_model_input(letterbox(image, (h, w))[0]) for image in images]
        samples = [np.stack(batch[:2]), batch[2][None]]
        stride = self.input_spec(loaded).stride
        if stride:
            samples += [to_model_input(letterbox(image, (h, w), stride)[0])[None] for image in images[:2]]
        return samples

    def int8_agreement(self, loaded, settings, inputs, fp32, int8) -> Agreement:
        measure = instance_measure(len(loaded.class_names), settings.conf, settings.iou, settings.max_det)
        return measure(inputs, fp32, int8)

    def int8_float_scope(self, loaded: LoadedModel) -> list[str]:
        """The head's box decoding (distribution focal loss, anchors, stride) stays in floating
        point: boxes are pixels up to the input size, and INT8 steps there move them visibly. Its
        convolutions, like the rest of the network, are quantized."""
        return box_decoding_scope(len(loaded.module.model.model) - 1)

    def server_models(self, loaded, model_io, settings: BuildSettings) -> list[ModelFolder]:
        metadata = self.metadata(loaded, settings)
        # the thresholds are also individual parameters of the postprocess model, for operators
        thresholds = metadata.thresholds.to_dict() if metadata.thresholds else {}
        return three_step_ensemble(
            settings,
            model_io,
            metadata,
            "yolo_seg_postprocess",
            {**thresholds, ConfigKeys.NUM_CLASSES: metadata.num_classes},
        )
