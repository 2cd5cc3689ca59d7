"""The network files ``build-repo tune`` serves in place of a repository's own: the network as
OpenVINO IR (converted from the repository's ``1/model.onnx``, checked against onnxruntime on the
tune images) and, with ``--calibration-images``, that IR quantized to INT8 by NNCF and guarded as
``build-repo --int8`` guards it (the same measure of the record's task, the same limit). Each is
made once per tune run, into its work folder, when a trial first needs it; the trials hard-link
the files into their copies, and the winner's are installed into the repository's network folder.
A network that cannot be made (a conversion that differs, an INT8 the guard refuses) is a failed
trial's error (BuildError), not the search's."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builder.errors import BuildError
from builder.quantization.guard import RECORD_FILE
from builder.quantization.options import Int8Options
from builder.tune_settings import (
    FP32,
    INT8,
    ONNX,
    OPENVINO,
    PRECISION_RECORD_KEY,
    RUNTIME_RECORD_KEY,
    ServedModel,
)
from python_backend_models import model_source
from segcontract.files import write_atomic
from segcontract.image_files import image_paths
from segcontract.model_metadata import Thresholds
from segcontract.tasks import Task
from segops.decode import ImageDecodeError, decode_image
from segops.resize import prepare

NETWORKS = ((ONNX, FP32), (OPENVINO, FP32), (OPENVINO, INT8))  # (runtime, precision) tune tries
CHECK_INPUTS = 3  # tune images the IR is checked on against onnxruntime
TOLERANCE = 1e-3  # abs and rel, as build-repo checks ONNX against PyTorch
CONVERSION_GUESS_S = 15.0  # the FP32 conversion and its check, until one is timed
INT8_VS_CONVERSION = 6.0  # NNCF's quantization and the guard, against the FP32 conversion's time
STEP_MODULES = {ONNX: "onnx_model", OPENVINO: "openvino_model"}  # python_backend_models/<this>.py


@dataclass
class NetworkFiles:
    """What one runtime and precision puts into the network's model folder."""

    files: dict[str, Path]  # path inside the folder → the file to put there
    texts: dict[str, str] = field(default_factory=dict)  # quantization.json, for INT8
    removed: tuple[str, ...] = ()  # stale files of another precision (quantization.json)
    record: dict[str, str | int | float] = field(default_factory=dict)  # into the model's record

    def link_into(self, folder: Path) -> None:
        """Into a trial's copy of the folder, whose files are hard links to the repository's:
        each is unlinked before it is replaced, so nothing of the repository's is written."""
        for rel in (*self.files, *self.texts, *self.removed):
            (folder / rel).unlink(missing_ok=True)
        for rel, source in self.files.items():
            link_or_copy(source, folder / rel)
        for rel, text in self.texts.items():
            (folder / rel).write_text(text, encoding="utf-8")

    def install(self, folder: Path) -> list[Path]:
        """Into the repository's network folder, each file replaced atomically (a link or copy
        beside it, then a rename); returns the paths written."""
        written = []
        for rel, source in self.files.items():
            target = folder / rel
            staged = target.with_name(f".{target.name}.{os.getpid()}.tune.tmp")
            staged.unlink(missing_ok=True)
            link_or_copy(source, staged)
            os.replace(staged, target)
            written.append(target)
        for rel, text in self.texts.items():
            write_atomic(folder / rel, text.encode())
            written.append(folder / rel)
        for rel in self.removed:
            (folder / rel).unlink(missing_ok=True)
        return written


class Networks:
    """The network files of each runtime and precision for one tune run (``work_dir`` lives as
    long as the run), made on first use; what could not be made is kept as its error."""

    def __init__(
        self,
        repository: Path,
        served: ServedModel,
        images: Path,
        work_dir: Path,
        int8: Int8Options | None = None,
        progress: Callable[[str], None] = lambda line: None,
    ):
        self.folder = repository / served.network.name
        self.onnx = self.folder / "1" / "model.onnx"
        self.one_model, self.own = served.one_model, served.current().network
        self.record, self.images, self.work_dir = served.record(), images, work_dir
        self.int8, self.progress = int8, progress
        self.notes: list[str] = []
        if int8 is None:
            self.notes.append("INT8 not tried: no --calibration-images")
        # a repository built before the OpenVINO runtimes carries server code that cannot load them
        self.current_code = (self.folder / "1" / "segops" / "batched_runs.py").is_file()
        if not self.onnx.is_file():
            self.notes.append(f"other runtimes not tried: no {self.onnx} to convert")
        elif not self.current_code:
            self.notes.append(
                "other runtimes not tried: an earlier build-repo built this repository; re-build it"
            )
        self._made: dict[tuple[str, str], NetworkFiles | BuildError] = {}
        self._fp32_model = None  # the converted ov.Model, which INT8 quantizes (or why it is not)
        self._conversion_s: float | None = None

    def offers(self, network: tuple[str, str]) -> bool:
        """Whether tune tries ``network`` (runtime, precision) here."""
        if network == self.own:
            return True
        return (
            network in NETWORKS
            and self.onnx.is_file()
            and self.current_code
            and (network[1] != INT8 or self.int8 is not None)
        )

    def making_s(self, network: tuple[str, str]) -> float:
        """About how many seconds making ``network``'s files would still take (0: made, or none to make)."""
        if network == self.own or network in self._made or network[0] == ONNX:
            return 0.0
        if isinstance(self._fp32_model, Exception):
            return 0.0  # fails at once
        conversion = CONVERSION_GUESS_S if self._conversion_s is None else self._conversion_s
        fp32 = 0.0 if self._fp32_model is not None else conversion
        return fp32 + (INT8_VS_CONVERSION * conversion if network[1] == INT8 else 0.0)

    def files(self, network: tuple[str, str]) -> NetworkFiles | None:
        """``network``'s files (None: the repository's own, nothing to put in); BuildError, the
        same each time, when they could not be made."""
        if network == self.own:
            return None
        if network not in self._made:
            try:
                self._made[network] = self._make(*network)
            except BuildError as exc:
                self._made[network] = exc
            except Exception as exc:  # OpenVINO's or NNCF's own: this network's failure, not the run's
                self._made[network] = BuildError(f"{network[0]} {network[1]}: {type(exc).__name__}: {exc}")
        made = self._made[network]
        if isinstance(made, BuildError):
            raise made
        return made

    def _make(self, runtime: str, precision: str) -> NetworkFiles:
        # the network step: beside the one-process model under its module's name, else the model
        step = f"1/{STEP_MODULES[runtime]}.py" if self.one_model else "1/model.py"
        files = {step: model_source(STEP_MODULES[runtime]), "1/network_step.py": model_source("network_step")}
        if runtime == ONNX:  # the repository's 1/model.onnx, always left in place
            return NetworkFiles(files, removed=(RECORD_FILE,))
        from builder.openvino import ir

        if self._fp32_model is None:  # once, for FP32 and INT8 alike, and so is its failure
            try:
                self._fp32_model = self._convert()
            except Exception as exc:
                self._fp32_model = exc
        if isinstance(self._fp32_model, Exception):
            raise self._fp32_model
        model, texts, record = self._fp32_model, {}, {PRECISION_RECORD_KEY: FP32}
        if precision == INT8:
            model, guard = self._quantize(self._fp32_model)
            texts, record = {RECORD_FILE: guard.to_json()}, guard.record()
        xml, weights = ir.save(model, self.work_dir / f"openvino-{precision}")
        files.update({"1/model.xml": xml, "1/model.bin": weights})
        removed = () if texts else (RECORD_FILE,)
        return NetworkFiles(files, texts, removed, {RUNTIME_RECORD_KEY: OPENVINO, **record})

    def _convert(self):
        """The repository's ONNX as OpenVINO IR, its outputs checked against onnxruntime's."""
        import onnxruntime as ort

        from builder.openvino import ir

        began = time.monotonic()
        self.progress(f"converting {self.onnx} to OpenVINO IR")
        model = ir.read_onnx(self.onnx)
        compiled = ir.compile_on_cpu(model)
        session = ort.InferenceSession(str(self.onnx), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        inputs = self._check_inputs()
        worst = 0.0
        for x in inputs:
            for name, expected, actual in zip(
                names, session.run(None, {session.get_inputs()[0].name: x}), ir.run(compiled, x)
            ):
                if expected.shape != actual.shape:
                    raise BuildError(
                        f"OpenVINO FP32: {name} has shape {actual.shape}, onnxruntime gives {expected.shape}"
                    )
                diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
                if not np.all(diff <= TOLERANCE + TOLERANCE * np.abs(expected)):
                    raise BuildError(
                        f"OpenVINO FP32 differs from onnxruntime beyond atol=rtol={TOLERANCE}: "
                        f"{name} max abs diff {float(diff.max()):.3g}"
                    )
                worst = max(worst, float(diff.max(initial=0.0)))
        self._conversion_s = time.monotonic() - began
        self.progress(
            f"  OpenVINO FP32 matches onnxruntime on {len(inputs)} images (max abs diff {worst:.2g})"
        )
        return model

    def _check_inputs(self) -> list[np.ndarray]:
        """The first few decodable tune images, prepared as the server prepares them."""
        inputs = []
        for path in image_paths(self.images):
            try:
                inputs.append(prepare(decode_image(path.read_bytes()), self.record.input)[None])
            except (ImageDecodeError, OSError):
                continue
            if len(inputs) == CHECK_INPUTS:
                break
        if not inputs:
            raise BuildError(f"--images {self.images}: no decodable image to check OpenVINO's outputs on")
        return inputs

    def _quantize(self, fp32_model):
        """INT8 of ``fp32_model`` and the guard's verdict, as build-repo --int8 (no --accept-drop)."""
        from builder.openvino import ir
        from builder.openvino.quantize import METHOD, quantize_int8
        from builder.quantization.agreement import measure_for
        from builder.quantization.calibration import calibration_set
        from builder.quantization.guard import GuardResult

        assert self.int8 is not None
        images = calibration_set(self.int8.calibration_images, self.record.input)
        self.progress(
            f"quantizing to INT8 (NNCF) on {len(images.calibrate)} of --calibration-images, "
            f"{len(images.held_out)} held out to measure the drop"
        )
        quantized = quantize_int8(fp32_model, images.calibrate, self._float_scope())
        fp32, int8 = ir.compile_on_cpu(fp32_model), ir.compile_on_cpu(quantized)
        thresholds = self.record.thresholds or Thresholds()
        measure = measure_for(
            self.record.task, self.record.num_classes, thresholds.conf, thresholds.iou, thresholds.max_det
        )
        agreement = measure(
            images.held_out,
            [ir.run(fp32, x) for x in images.held_out],
            [ir.run(int8, x) for x in images.held_out],
        )
        try:
            guard = GuardResult.judge(agreement, self.int8, METHOD, len(images.calibrate))
        except BuildError as exc:  # the verdict, without build-repo's advice on what to build instead
            raise BuildError(str(exc).split("; nothing was written")[0]) from None
        self.progress(f"  INT8: {guard.describe()}")
        return quantized, guard

    def _float_scope(self) -> list[str]:
        """What INT8 leaves in floating point, as the build's family leaves it: YOLO's box
        decoding in its head (the last ``model.<n>`` of the node names)."""
        if self.record.task is not Task.INSTANCE:
            return []
        import onnx

        from builder.families.yolo_seg import box_decoding_scope

        graph = onnx.load(str(self.onnx), load_external_data=False).graph
        heads = [
            int(part[6:])
            for n in graph.node
            for part in n.name.split("/")
            if part[:6] == "model." and part[6:].isdigit()
        ]
        return box_decoding_scope(max(heads)) if heads else []


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)
