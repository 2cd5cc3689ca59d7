"""The optional dependency groups ("extras") of the segstack distribution, and the check a console
script makes before its CLI imports them.

``pip install segstack`` serves and queries models without torch; ``build-repo`` needs the
``build`` extra, ``seg-train`` the ``train`` extra, ``seg-review`` the ``review`` extra. Their
console scripts call :func:`require_extra` first, so a missing extra is one line naming it rather
than a traceback from deep inside an import. Standard library only, and nothing is imported to
check: a module counts as installed when its import system can find it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable

DISTRIBUTION = "segstack"

# the top-level modules each extra of pyproject.toml brings, by import name
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "build": (
        "torch",
        "torchvision",
        "ultralytics",
        "segmentation_models_pytorch",
        "timm",
        "onnx",
        "onnxruntime",
        "onnx_graphsurgeon",
        "polygraphy",
    ),
    "train": (
        "torch",
        "torchvision",
        "ultralytics",
        "segmentation_models_pytorch",
        "timm",
        "lightning",
        "wandb",
        "tensorboard",
        "albumentations",
    ),
    "review": ("starlette", "uvicorn", "jinja2", "itsdangerous", "python_multipart"),
}

# a command's failure to start for a missing extra, as for a user error
EXIT_CODE = 2


def _installed(module: str) -> bool:
    if module in sys.modules:  # None there blocks its import
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing; a module without a spec
        return False


def missing_extra(modules: Iterable[str]) -> str | None:
    """The first of ``modules`` that is not installed, or None when all of them are."""
    return next((m for m in modules if not _installed(m)), None)


def missing_extra_line(command: str, extra: str) -> str | None:
    """``<command>: needs the <extra> extra: pip install ...`` when one of its modules is missing."""
    module = missing_extra(EXTRA_MODULES[extra])
    if module is None:
        return None
    install = f"pip install '{DISTRIBUTION}[{extra}]'"
    return f"{command}: needs the {extra} extra: {install} ({module} is not installed)"


def require_extra(command: str, extra: str) -> None:
    """Return when ``extra`` is installed; else print the one line on stderr and exit with code 2."""
    line = missing_extra_line(command, extra)
    if line is not None:
        print(line, file=sys.stderr)
        sys.exit(EXIT_CODE)
