"""Named tensors as config.pbtxt describes them (dims without the batch dimension)."""

from __future__ import annotations

from dataclasses import dataclass

# numpy dtype name → Triton TYPE_* name
TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "bytes": "TYPE_STRING",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # a key of TRITON_DTYPES
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in TRITON_DTYPES:
            raise ValueError(f"tensor {self.name}: unsupported dtype {self.dtype!r}")
        if any(d == 0 or d < -1 for d in self.dims):
            raise ValueError(f"tensor {self.name}: dims must be positive or -1, got {self.dims}")

    @property
    def triton_type(self) -> str:
        return TRITON_DTYPES[self.dtype]

    @classmethod
    def from_numpy(cls, name: str, array) -> TensorSpec:
        """The spec of a batched array (anything with ``dtype`` and ``shape``, e.g. numpy's)."""
        return cls(name, str(array.dtype), tuple(array.shape[1:]))
