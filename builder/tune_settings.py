"""What ``build-repo tune`` varies in a built repository (the network's runtime and precision,
instances, the network's threads, the largest batch, the dynamic batcher's queue delay), read from
and written into the configs of one served model: the one Python model of a python-onnx build, or an
ensemble and its composing models. The network's files for another runtime are builder.tune_runtimes'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from builder import triton_config
from builder.errors import BuildError
from builder.repository import MARKER
from segcontract.files import write_atomic
from segcontract.model_metadata import METADATA_KEY, ConfigKeys, ModelMetadata

THREADS_KEY = (
    "intra_op_threads"  # the network's parameter (python_backend_models/onnx_model.py, openvino_model.py)
)
ONNX, OPENVINO = "python-onnx", "python-openvino"  # the runtimes tune serves the network with
FP32, INT8 = "fp32", "int8"
OPENVINO_MODULE = "openvino_model"  # python_backend_models/openvino_model.py: the network_module parameter
# what the network adds to the model's record (builder.runtimes, builder.quantization.guard)
RUNTIME_RECORD_KEY, PRECISION_RECORD_KEY, INT8_RECORD_PREFIX = "network_runtime", "precision", "int8_"

Record = Mapping[str, str | int | float]


@dataclass(frozen=True)
class Setting:
    instances: int
    threads: int | None  # None: the instances share the cores the server sees; 0: every core each
    max_batch_size: int
    max_queue_delay_us: int
    runtime: str = ONNX  # what runs the network: onnxruntime (python-onnx) or OpenVINO (python-openvino)
    precision: str = FP32  # int8: OpenVINO only, quantized and guarded as build-repo --int8

    @property
    def network(self) -> tuple[str, str]:
        return (self.runtime, self.precision)

    def label(self) -> str:
        threads = {None: "shared", 0: "all"}.get(self.threads, str(self.threads))
        return (
            f"{self.runtime} {self.precision.upper()}, instances {self.instances}, threads {threads}, "
            f"max batch {self.max_batch_size}, queue delay {self.max_queue_delay_us} µs"
        )

    def to_dict(self) -> dict:
        return {
            "runtime": self.runtime,
            "precision": self.precision,
            "instances": self.instances,
            "threads": self.threads,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_us": self.max_queue_delay_us,
        }

    def but(self, **changes) -> Setting:
        return replace(self, **changes)


@dataclass
class ServedModel:
    """A served model build-repo wrote (one Python model, or an ensemble and its composing models):
    config messages by folder name."""

    name: str
    configs: dict[str, mc.ModelConfig]

    @classmethod
    def read(cls, repository: Path, name: str) -> ServedModel:
        served = cls._config(repository, name)
        one_model = (  # the record and the network: the served model, not one of an ensemble's steps
            served.backend == "python"
            and METADATA_KEY in served.parameters
            and (repository / name / "1" / "model.onnx").is_file()
        )
        if served.platform != "ensemble" and not one_model:
            raise BuildError(
                f"{repository / name}: neither an ensemble nor one model with its network; "
                "give --name the served model's name (build-repo --name)"
            )
        configs = {name: served}
        for step in served.ensemble_scheduling.step:
            configs[step.model_name] = cls._config(repository, step.model_name)
        served = cls(name, configs)
        if served.network.backend != "python":
            raise BuildError(
                f"{repository / served.network.name}: build-repo tune measures with the bundled "
                "tritonserver (seg-serve), which serves python-onnx repositories; build with "
                "--runtime python-onnx, or tune an NGC server's repository with Triton Model Analyzer"
            )
        return served

    @staticmethod
    def _config(repository: Path, folder: str) -> mc.ModelConfig:
        path = repository / folder / "config.pbtxt"
        if not (repository / folder / MARKER).is_file() or not path.is_file():
            raise BuildError(
                f"{repository / folder}: not a model build-repo wrote (no {MARKER} and config.pbtxt); "
                "build-repo tune changes only build-repo's own models"
            )
        return triton_config.parse(path.read_text())

    @property
    def network(self) -> mc.ModelConfig:
        """The model that runs the network's session (the served one itself, when it is one model)."""
        return self.configs.get(f"{self.name}_model") or self.configs[self.name]

    @property
    def one_model(self) -> bool:
        """The served model runs the network itself (no ensemble)."""
        return self.network.name == self.name

    def current(self) -> Setting:
        network = self.network
        threads = network.parameters[THREADS_KEY].string_value if THREADS_KEY in network.parameters else None
        module = network.parameters.get(ConfigKeys.NETWORK_MODULE)  # .get: [] would add the key
        runtime = OPENVINO if module is not None and module.string_value == OPENVINO_MODULE else ONNX
        return Setting(
            instances=network.instance_group[0].count if network.instance_group else 1,
            threads=None if threads is None else int(threads),
            max_batch_size=network.max_batch_size,
            max_queue_delay_us=network.dynamic_batching.max_queue_delay_microseconds,
            runtime=runtime,
            precision=str(self.record().extra.get(PRECISION_RECORD_KEY, FP32))
            if runtime == OPENVINO
            else FP32,
        )

    def record(self) -> ModelMetadata:
        """The served model's record (task, classes, thresholds, input spec)."""
        for config in (self.configs[self.name], *self.configs.values()):
            if METADATA_KEY in config.parameters:
                return ModelMetadata.from_json(config.parameters[METADATA_KEY].string_value)
        raise BuildError(f"{self.name}: no {METADATA_KEY} record in its configs; re-build it with build-repo")

    def with_setting(self, setting: Setting, record: Record | None = None) -> dict[str, mc.ModelConfig]:
        """Every config with ``setting`` in it (copies; these are not changed); with ``record``,
        the network's facts (runtime, precision, INT8's guard) in place of those in the records."""
        out = {}
        for folder, original in self.configs.items():
            config = mc.ModelConfig()
            config.CopyFrom(original)
            config.max_batch_size = setting.max_batch_size
            for group in config.instance_group:
                group.count = setting.instances
            if config.HasField("dynamic_batching"):
                config.dynamic_batching.max_queue_delay_microseconds = setting.max_queue_delay_us
                preferred = [
                    b for b in config.dynamic_batching.preferred_batch_size if b <= setting.max_batch_size
                ]
                del config.dynamic_batching.preferred_batch_size[:]
                config.dynamic_batching.preferred_batch_size.extend(preferred)
            if folder == self.network.name:
                if setting.threads is None:
                    config.parameters.pop(THREADS_KEY, None)
                else:
                    config.parameters[THREADS_KEY].string_value = str(setting.threads)
                if setting.runtime == OPENVINO:
                    config.parameters[ConfigKeys.NETWORK_MODULE].string_value = OPENVINO_MODULE
                else:
                    config.parameters.pop(ConfigKeys.NETWORK_MODULE, None)
            if record is not None and METADATA_KEY in config.parameters:
                _replace_network_record(config, record)
            out[folder] = config
        return out

    def write(self, repository: Path, setting: Setting, record: Record | None = None) -> list[Path]:
        """``setting`` (and ``record``, as in :meth:`with_setting`) into the repository's configs,
        each file replaced atomically."""
        written = []
        for folder, config in self.with_setting(setting, record).items():
            path = repository / folder / "config.pbtxt"
            write_atomic(path, triton_config.to_text(config).encode())
            written.append(path)
        return written


def _replace_network_record(config: mc.ModelConfig, record: Record) -> None:
    """The record's network facts, and the individual parameters an operator reads beside it
    (ModelMetadata.to_parameters), replaced by ``record``'s."""
    metadata = ModelMetadata.from_json(config.parameters[METADATA_KEY].string_value)

    def network_key(key: str) -> bool:
        return key in (RUNTIME_RECORD_KEY, PRECISION_RECORD_KEY) or key.startswith(INT8_RECORD_PREFIX)

    for key in [k for k in metadata.extra if network_key(k)]:
        del metadata.extra[key]
        config.parameters.pop(key, None)
    metadata.extra.update(record)
    config.parameters[METADATA_KEY].string_value = metadata.to_json()
    for key, value in record.items():
        config.parameters[key].string_value = str(value)
