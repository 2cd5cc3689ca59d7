"""The INT8 accuracy guard's verdict: what it measured, written into the model's record and its
folder (``quantization.json``, which ``build-repo doctor`` reads), and the refusal beyond the limit."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from builder.errors import BuildError
from builder.quantization.agreement import Agreement
from builder.quantization.options import Int8Options

RECORD_FILE = "quantization.json"  # in the network's model folder


@dataclass(frozen=True)
class GuardResult:
    method: str  # "OpenVINO NNCF post-training quantization"
    metric: str
    score: float
    drop: float
    max_drop: float
    held_out_images: int
    calibration_images: int
    accepted_drop: bool  # the drop is beyond max_drop and --accept-drop built it anyway

    @classmethod
    def judge(
        cls, agreement: Agreement, options: Int8Options, method: str, calibrated_on: int
    ) -> GuardResult:
        """The verdict; raises BuildError when the drop is beyond the limit without --accept-drop."""
        drop = round(agreement.drop, 3)  # what the record and the message say is what is judged
        beyond = drop > options.max_drop
        result = cls(  # accepted_drop: built beyond the limit, which only --accept-drop does
            method,
            agreement.metric,
            round(agreement.score, 3),
            drop,
            options.max_drop,
            agreement.images,
            calibrated_on,
            beyond and options.accept_drop,
        )
        if beyond and not options.accept_drop:
            raise BuildError(
                f"--int8 refused: {result.describe()}; nothing was written. Give more (or more typical) "
                "--calibration-images, raise --max-drop, or build with --accept-drop"
            )
        return result

    def describe(self) -> str:
        if self.drop <= self.max_drop:
            verdict = f"within the limit {self.max_drop:g}"
        elif self.accepted_drop:
            verdict = f"beyond the limit {self.max_drop:g}, accepted with --accept-drop"
        else:
            verdict = f"beyond the limit {self.max_drop:g}"
        return (
            f"{self.metric} {self.score:.2f} on {self.held_out_images} held-out images, a drop of "
            f"{self.drop:.2f} points ({verdict})"
        )

    def to_json(self) -> str:
        return json.dumps({"precision": "int8", **asdict(self)}, indent=1) + "\n"

    def record(self) -> dict[str, str | int | float]:
        """The facts the model's record (segcontract.model_metadata ``extra``) carries."""
        return {
            "precision": "int8",
            "int8_metric": self.metric,
            "int8_score": self.score,
            "int8_drop": self.drop,
            "int8_max_drop": self.max_drop,
            "int8_held_out_images": self.held_out_images,
            "int8_accepted_drop": int(self.accepted_drop),
        }

    @classmethod
    def from_json(cls, text: str) -> GuardResult:
        data = json.loads(text)
        data.pop("precision", None)
        return cls(**data)
