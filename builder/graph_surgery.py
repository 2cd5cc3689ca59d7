"""Graph surgery with onnx-graphsurgeon: fold constants, remove dead nodes, sort topologically."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_graphsurgeon as gs


def fold_and_clean(onnx_path: Path) -> dict[str, int]:
    """Rewrite ``onnx_path`` in place; return node counts before and after."""
    model = onnx.load(str(onnx_path))
    before = len(model.graph.node)
    graph = gs.import_onnx(model)
    graph.fold_constants().cleanup().toposort()
    folded = gs.export_onnx(graph)
    folded.ir_version = model.ir_version  # keep what the exporter chose: older runtimes read it
    onnx.checker.check_model(folded)
    onnx.save(folded, str(onnx_path))
    return {"nodes_before": before, "nodes_after": len(folded.graph.node)}
