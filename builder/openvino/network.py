"""The network as OpenVINO IR, for either OpenVINO runtime: converted from the checked ONNX file,
checked against PyTorch on the build's samples, and with ``--int8`` quantized and guarded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder import verify
from builder.errors import BuildError
from builder.exported_network import ExportedNetwork
from builder.openvino import ir
from builder.openvino.quantize import METHOD, quantize_int8
from builder.quantization.agreement import NothingToCompare
from builder.quantization.calibration import calibration_set
from builder.quantization.guard import RECORD_FILE, GuardResult
from builder.quantization.options import Int8Options

FEW_HELD_OUT = 20  # below this many held-out images, the drop is said to be a rough figure


@dataclass
class OpenVinoNetwork:
    xml: Path
    bin: Path
    guard: GuardResult | None  # None: FP32

    def files(self) -> dict[str, Path]:
        """Where they go in the model folder."""
        return {"1/model.xml": self.xml, "1/model.bin": self.bin}

    def record(self) -> dict[str, str | int | float]:
        """What the model's record (segcontract.model_metadata ``extra``) says of the network."""
        return self.guard.record() if self.guard else {"precision": "fp32"}

    def texts(self) -> dict[str, str]:
        """The model folder's ``quantization.json`` (what ``build-repo doctor`` reads), if INT8."""
        return {RECORD_FILE: self.guard.to_json()} if self.guard else {}


def openvino_network(network: ExportedNetwork, int8: Int8Options | None) -> OpenVinoNetwork:
    network.progress("converting to OpenVINO IR")
    model = ir.read_onnx(network.onnx_path)
    fp32 = ir.compile_on_cpu(model)
    names = network.output_names or ir.output_names(model)
    comparisons = verify.check_against_reference(
        "the OpenVINO IR (FP32, CPU)",
        network.reference,
        [ir.run(fp32, x) for x in network.samples],
        names,
        verify.Tolerance(*network.tolerance),
    )
    worst = ", ".join(f"{c.name} {c.max_abs_diff:.2g}" for c in comparisons)
    network.progress(f"OpenVINO IR matches PyTorch (max abs diff: {worst})")
    guard = None
    if int8 is not None:
        if network.agreement is None:
            raise BuildError("--int8: this model family has no accuracy measure to guard INT8 with")
        images = calibration_set(int8.calibration_images, network.input_spec)
        few = len(images.held_out) < FEW_HELD_OUT
        network.progress(
            f"quantizing to INT8 (NNCF), calibrated on {len(images.calibrate)} of --calibration-images, "
            f"{len(images.held_out)} held out to measure the drop"
            + (f" (few: the figure is rough; {5 * FEW_HELD_OUT} images give {FEW_HELD_OUT})" if few else "")
        )
        quantized = quantize_int8(model, images.calibrate, network.float_scope)
        int8_compiled = ir.compile_on_cpu(quantized)
        try:
            agreement = network.agreement(
                images.held_out,
                [ir.run(fp32, x) for x in images.held_out],
                [ir.run(int8_compiled, x) for x in images.held_out],
            )
        except NothingToCompare as exc:
            if not int8.accept_drop:
                raise
            agreement = exc.agreement
        guard = GuardResult.judge(agreement, int8, METHOD, len(images.calibrate))
        network.progress(f"INT8: {guard.describe()}")
        model = quantized
    xml, weights = ir.save(model, network.work_dir / "openvino")
    return OpenVinoNetwork(xml, weights, guard)
