"""Where the installers put the tools that run beside our code: the tritonserver extracted from the
nvidia-pytriton wheel, and perf_analyzer. Serving installs them; clients find them here."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def tritonserver_home() -> Path:
    """Inside the active environment, unless SEG_TRITONSERVER_HOME says otherwise."""
    return Path(os.environ.get("SEG_TRITONSERVER_HOME", Path(sys.prefix) / "tritonserver"))


def perf_analyzer_home() -> Path:
    return tritonserver_home() / "perf_analyzer"


def perf_analyzer_binary(root: Path | None = None) -> Path:
    return (root or perf_analyzer_home()) / "bin" / "perf_analyzer"


def perf_analyzer_lib_dir(root: Path | None = None) -> Path:
    """Its shared libraries (libcudart, libb64): LD_LIBRARY_PATH."""
    return (root or perf_analyzer_home()) / "lib"


def perf_analyzer_installed(root: Path | None = None) -> bool:
    lib = perf_analyzer_lib_dir(root)
    return (
        perf_analyzer_binary(root).is_file()
        and (lib / "libcudart.so.12").is_file()
        and (lib / "libb64.so.0d").is_file()
    )
