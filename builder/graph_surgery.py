"""Graph surgery with onnx-graphsurgeon: fold constants, remove dead nodes, sort topologically,
and pin every non-batch output dimension (the exporter leaves them symbolic once the batch axis is
dynamic; TensorRT and Triton's config check want them static)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs


def fold_and_clean(
    onnx_path: Path, output_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, int]:
    """Rewrite ``onnx_path`` in place; return node counts before and after.

    ``output_shapes``: per output, its shape without the batch dimension (measured in PyTorch); a
    name in place of a size keeps that axis dynamic."""
    model = onnx.load(str(onnx_path))
    before = len(model.graph.node)
    graph = gs.import_onnx(model)
    graph.fold_constants().cleanup().toposort()
    for tensor in graph.outputs:
        if output_shapes and tensor.name in output_shapes:
            tensor.shape = [tensor.shape[0] if tensor.shape else "batch", *output_shapes[tensor.name]]
    folded = gs.export_onnx(graph)
    folded.ir_version = model.ir_version  # keep what the exporter chose: older runtimes read it
    onnx.checker.check_model(folded)
    onnx.save(folded, str(onnx_path))
    return {"nodes_before": before, "nodes_after": len(folded.graph.node)}
