"""config.pbtxt generation from tritonclient's ModelConfig protobuf (schema-checked, never templated)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from segcontract.tensors import TensorSpec


def _io(cls, spec: TensorSpec, optional: bool = False):
    msg = cls(name=spec.name, data_type=mc.DataType.Value(spec.triton_type), dims=list(spec.dims))
    if optional:
        msg.optional = True
    return msg


def _outputs(
    specs: Sequence[TensorSpec], label_files: Mapping[str, str] | None = None
) -> list[mc.ModelOutput]:
    """``label_files``: output name → ``label_filename`` (a file in the model's folder, one class
    name per line), which Triton's classification extension reads to answer ``class_count=k``
    requests with "score:index:label" strings."""
    label_files = dict(label_files or {})
    unknown = sorted(set(label_files) - {s.name for s in specs})
    if unknown:
        raise ValueError(f"label files for outputs that are not there: {unknown}")
    outputs = []
    for spec in specs:
        msg = _io(mc.ModelOutput, spec)
        if spec.name in label_files:
            msg.label_filename = label_files[spec.name]
        outputs.append(msg)
    return outputs


def _parameters(config: mc.ModelConfig, parameters: Mapping[str, object]) -> None:
    for key, value in parameters.items():
        config.parameters[key].string_value = str(value)


@dataclass
class DynamicBatching:
    max_queue_delay_us: int = 0
    preferred_batch_sizes: Sequence[int] = ()


@dataclass
class ModelSettings:
    """What every non-ensemble model config shares."""

    name: str
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    max_batch_size: int
    parameters: Mapping[str, object] = field(default_factory=dict)
    dynamic_batching: DynamicBatching | None = None
    instances: int = 1
    label_files: Mapping[str, str] = field(default_factory=dict)  # output name → label_filename

    def __post_init__(self) -> None:
        if self.max_batch_size < 0:
            raise ValueError(f"{self.name}: max_batch_size must be >= 0")
        if self.instances < 1:
            raise ValueError(f"{self.name}: instance count must be >= 1")


def _base(settings: ModelSettings) -> mc.ModelConfig:
    config = mc.ModelConfig(name=settings.name, max_batch_size=settings.max_batch_size)
    config.input.extend(_io(mc.ModelInput, t) for t in settings.inputs)
    config.output.extend(_outputs(settings.outputs, settings.label_files))
    if settings.dynamic_batching is not None:
        db = config.dynamic_batching
        db.max_queue_delay_microseconds = settings.dynamic_batching.max_queue_delay_us
        db.preferred_batch_size.extend(settings.dynamic_batching.preferred_batch_sizes)
    group = config.instance_group.add()
    group.count = settings.instances
    group.kind = mc.ModelInstanceGroup.Kind.KIND_CPU
    _parameters(config, settings.parameters)
    return config


def python_model_config(settings: ModelSettings) -> mc.ModelConfig:
    config = _base(settings)
    config.backend = "python"
    return config


def onnxruntime_model_config(
    settings: ModelSettings, gpu: bool = False, tensorrt_accelerator: Mapping[str, str] | None = None
) -> mc.ModelConfig:
    """For the NGC tritonserver's onnxruntime backend (``platform: "onnxruntime_onnx"``).
    ``tensorrt_accelerator``: the parameters of onnxruntime's TensorRT execution accelerator, which
    runs on the GPU (``optimization.execution_accelerators.gpu_execution_accelerator``)."""
    config = _base(settings)
    config.platform = "onnxruntime_onnx"
    if gpu or tensorrt_accelerator is not None:
        config.instance_group[0].kind = mc.ModelInstanceGroup.Kind.KIND_GPU
    if tensorrt_accelerator is not None:
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt"
        )
        accelerator.parameters.update(tensorrt_accelerator)
    return config


def openvino_model_config(settings: ModelSettings) -> mc.ModelConfig:
    """For the NGC tritonserver's OpenVINO backend (``backend: "openvino"``, ``1/model.xml`` and
    ``model.bin``) on the CPU; its keys (NUM_STREAMS, INFERENCE_NUM_THREADS, PERFORMANCE_HINT)
    are among ``settings.parameters``."""
    config = _base(settings)
    config.backend = "openvino"
    config.default_model_filename = "model.xml"
    return config


def tensorrt_model_config(settings: ModelSettings) -> mc.ModelConfig:
    """A prebuilt TensorRT engine: ``platform: "tensorrt_plan"``, ``1/model.plan``, on the GPU.
    ``max_batch_size`` must be the engine profile's max batch (Triton checks it on load)."""
    config = _base(settings)
    config.platform = "tensorrt_plan"
    config.default_model_filename = "model.plan"
    config.instance_group[0].kind = mc.ModelInstanceGroup.Kind.KIND_GPU
    return config


@dataclass
class EnsembleStep:
    model_name: str
    input_map: Mapping[str, str]  # the step model's input name → ensemble tensor name
    output_map: Mapping[str, str]  # the step model's output name → ensemble tensor name


def ensemble_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    steps: Sequence[EnsembleStep],
    max_batch_size: int,
    parameters: Mapping[str, object] | None = None,
    label_files: Mapping[str, str] | None = None,
) -> mc.ModelConfig:
    """``label_files``: output name → ``label_filename``, as :class:`ModelSettings` has them."""
    config = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=max_batch_size)
    config.input.extend(_io(mc.ModelInput, t) for t in inputs)
    config.output.extend(_outputs(outputs, label_files))
    for step in steps:
        s = config.ensemble_scheduling.step.add(model_name=step.model_name, model_version=-1)
        s.input_map.update(step.input_map)
        s.output_map.update(step.output_map)
    _parameters(config, parameters or {})
    return config


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def write(config: mc.ModelConfig, model_dir: Path) -> Path:
    path = Path(model_dir) / "config.pbtxt"
    path.write_text(to_text(config))
    return path
