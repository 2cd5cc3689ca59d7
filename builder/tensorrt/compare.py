"""Polygraphy's Comparator: a candidate runner (the engine) against a reference (onnxruntime on the
same ONNX file), on the same feeds, one verdict per output."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
from polygraphy.comparator import Comparator, SimpleCompareFunc

from builder.errors import BuildError
from builder.tensorrt.options import EngineTolerance


@dataclass(frozen=True)
class OutputError:
    name: str
    max_abs: float
    mean_abs: float
    passed: bool


def onnxruntime_reference(onnx_path: Path) -> OnnxrtRunner:
    return OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["cpu"]), name="onnxruntime")


def compare_runners(
    candidate, reference, feeds: Iterable[dict], tolerance: EngineTolerance
) -> list[OutputError]:
    """Run both on every feed; raise BuildError naming each output beyond ``tolerance``."""
    feeds = list(feeds)
    if not feeds:
        raise BuildError("no inputs to compare the engine on")
    results = Comparator.run([candidate, reference], data_loader=feeds)
    compare = SimpleCompareFunc(atol=tolerance.atol, rtol=tolerance.rtol, check_error_stat=tolerance.stat)
    verdicts = Comparator.compare_accuracy(results, compare_func=compare)
    per_iteration = next(iter(verdicts[0].values()))  # one runner pair: a list of {output: result}
    errors = []
    for name in per_iteration[0]:
        outcomes = [iteration[name] for iteration in per_iteration]
        # an output whose shapes cannot be compared is a plain False, without statistics
        stats = [o for o in outcomes if not isinstance(o, bool)]
        errors.append(
            OutputError(
                name,
                max((o.max_absdiff for o in stats), default=float("nan")),
                max((o.mean_absdiff for o in stats), default=float("nan")),
                all(bool(o) for o in outcomes),
            )
        )
    failed = [e for e in errors if not e.passed]
    if failed:
        detail = ", ".join(f"{e.name} (max abs {e.max_abs:.3g}, mean abs {e.mean_abs:.3g})" for e in failed)
        raise BuildError(
            f"{candidate.name} differs from {reference.name} beyond tolerance ({tolerance.describe()}) on "
            f"{len(feeds)} batches: {detail or 'see the log'}; widen with --engine-atol/--engine-rtol "
            "only if the served results stay right"
        )
    return errors
