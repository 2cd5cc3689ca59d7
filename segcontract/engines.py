"""A TensorRT engine only loads on the GPU architecture and TensorRT version it was built with.

build-repo records both next to ``model.plan`` (``engine.json``) and in the config parameters;
``seg-serve`` and ``build-repo doctor`` compare that record with what is here, so that a mismatch
reads as one clear line instead of Triton's deserialisation error. Reading a repository's configs
needs tritonclient's protobuf classes; nothing here needs torch or TensorRT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

RECORD_FILE = "engine.json"
_LIB_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/usr/lib/aarch64-linux-gnu"),
    Path("/usr/local/tensorrt/lib"),
)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0": what a TensorRT engine is tied to


@dataclass(frozen=True)
class EngineRecord:
    """What a ``model.plan`` was built with and for."""

    tensorrt_version: str
    gpu: GpuInfo
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    polygraphy_version: str = ""

    def to_parameters(self) -> dict[str, str]:
        """The config.pbtxt parameters that carry the record (what a Triton operator sees)."""
        return {
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu.name,
            "gpu_compute_capability": self.gpu.compute_capability,
            "precision": self.precision,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}  # a newer build-repo may record more
        return cls(**{k: v for k, v in data.items() if k in known and k != "gpu"}, gpu=GpuInfo(**data["gpu"]))

    @classmethod
    def read(cls, path: Path) -> EngineRecord | None:
        """The record at ``path``; None when absent or unreadable (then nothing is known)."""
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class EngineModel:
    """A model of a repository whose runtime is a TensorRT plan."""

    name: str
    folder: Path
    record: EngineRecord | None  # None: built elsewhere, nothing recorded


def local_gpus(device: str | None = None) -> list[GpuInfo]:
    """The GPUs nvidia-smi sees (PCI order), or only ``device`` (an index or UUID); empty where
    there is no driver or no GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    select = ["-i", device] if device else []
    try:
        out = subprocess.run(
            [smi, *select, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.splitlines():
        name, _, capability = line.rpartition(",")
        if name.strip():
            gpus.append(GpuInfo(name.strip(), capability.strip()))
    return gpus


def local_tensorrt_version() -> str | None:
    """TensorRT here: the Python package, else the NGC images' TRT_VERSION, else libnvinfer's file name."""
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if os.environ.get("TRT_VERSION"):
        return os.environ["TRT_VERSION"]
    for lib_dir in _LIB_DIRS:
        versions = [m.group(1) for p in lib_dir.glob("libnvinfer.so.*") if (m := _LIBNVINFER.match(p.name))]
        if versions:
            return max(versions, key=lambda v: [int(x) for x in v.split(".")])
    return None


_LIBNVINFER = re.compile(r"^libnvinfer\.so\.(\d+(?:\.\d+)+)$")


def same_tensorrt(a: str, b: str) -> bool:
    """Versions agree on every component both name: 10.5.0 matches 10.5.0.18, not 10.6.0."""
    pa, pb = a.split("."), b.split(".")
    return pa[: min(len(pa), len(pb))] == pb[: min(len(pa), len(pb))]


def engine_models(repository: Path) -> list[EngineModel]:
    """Every ``tensorrt_plan`` model of a repository, with its record where build-repo wrote one.

    Reading config.pbtxt takes tritonclient's protobuf classes, imported here so that the rest of
    the contract needs only the standard library."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    found = []
    for config_path in sorted(Path(repository).glob("*/config.pbtxt")):
        try:
            config = text_format.Parse(config_path.read_text(), mc.ModelConfig())
        except (text_format.ParseError, OSError):
            continue  # not ours to judge: tritonserver reports a broken config itself
        if config.platform != "tensorrt_plan" and config.backend != "tensorrt":
            continue
        record = EngineRecord.read(config_path.parent / RECORD_FILE)
        found.append(EngineModel(config.name or config_path.parent.name, config_path.parent, record))
    return found


def mismatches(
    model: EngineModel,
    gpus: Iterable[GpuInfo],
    tensorrt_version: str | None,
    backends: set[str] | None = None,
) -> list[str]:
    """One line per reason this engine will not load here (empty: it should)."""
    gpus = list(gpus)
    record = model.record
    problems = []
    if backends is not None and "tensorrt" not in backends:
        problems.append(
            f"{model.name}: this tritonserver has no TensorRT backend (the nvidia-pytriton one has only "
            "the Python backend); serve TensorRT engines with the NGC image: docker compose up serve"
        )
    if record is None:
        problems.append(
            f"{model.name}: no readable {RECORD_FILE} beside the plan, so its GPU and TensorRT version are "
            "unknown; "
            "rebuild it with build-repo --runtime tensorrt"
        )
        return problems
    if not gpus:
        problems.append(
            f"{model.name}: no NVIDIA GPU visible here (nvidia-smi); the engine needs a "
            f"compute capability {record.gpu.compute_capability} GPU ({record.gpu.name})"
        )
    elif not any(g.compute_capability == record.gpu.compute_capability for g in gpus):
        here = ", ".join(f"{g.name} ({g.compute_capability})" for g in gpus)
        problems.append(
            f"{model.name}: engine built for compute capability {record.gpu.compute_capability} "
            f"({record.gpu.name}), this machine has {here}; "
            "rebuild it here with build-repo --runtime tensorrt"
        )
    if tensorrt_version is not None and not same_tensorrt(record.tensorrt_version, tensorrt_version):
        problems.append(
            f"{model.name}: engine built with TensorRT {record.tensorrt_version}, this server has "
            f"{tensorrt_version}; rebuild it with the build image of the same NGC release"
        )
    return problems


def notes(model: EngineModel, gpus: Iterable[GpuInfo]) -> list[str]:
    """Things worth knowing that do not stop the engine from loading."""
    record = model.record
    if record is None:
        return []
    same_arch = [g for g in gpus if g.compute_capability == record.gpu.compute_capability]
    if same_arch and not any(g.name == record.gpu.name for g in same_arch):
        return [
            f"{model.name}: engine tuned on {record.gpu.name}, serving on {same_arch[0].name} (same "
            "architecture: it loads, but its kernels were timed on the other GPU)"
        ]
    return []
