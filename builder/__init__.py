"""Checkpoint → ONNX → graph surgery → check against PyTorch → runtime → Triton model repository."""
