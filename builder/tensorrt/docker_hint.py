"""The ``docker run`` line that repeats a build-repo command inside the build image.

Every folder the command reads or writes is mounted at the same absolute path, and the container
starts in the same working directory, so the user's own arguments work unchanged inside it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from builder.tensorrt.ngc import BUILD_IMAGE

PATH_OPTIONS = frozenset({"--weights", "--output", "-o", "--images", "--calibration-cache", "--timing-cache"})
TIMING_CACHE_VOLUME = "segstack-trt-cache"  # the build image's XDG_CACHE_HOME (/cache): kept across runs


def _path_arguments(argv: Sequence[str]) -> list[str]:
    paths, i = [], 0
    while i < len(argv):
        key, eq, value = argv[i].partition("=")
        if key in PATH_OPTIONS:
            if eq:
                paths.append(value)
            elif i + 1 < len(argv):
                paths.append(argv[i + 1])
                i += 1
        i += 1
    return paths


def docker_run_line(
    argv: Sequence[str],
    cwd: Path | None = None,
    image: str = BUILD_IMAGE,
    user: str | None = None,
) -> str:
    """``argv`` is build-repo's own arguments (without the program name)."""
    workdir = Path(cwd or os.getcwd()).resolve()
    mounts = [workdir]
    for arg in _path_arguments(argv):
        path = (workdir / arg).resolve()
        folder = path if path.is_dir() else path.parent
        if not any(folder.is_relative_to(m) for m in mounts):
            mounts.append(folder)
    user = user or f"{os.getuid()}:{os.getgid()}"
    command = [
        "docker",
        "run",
        "--rm",
        "--gpus",
        "all",
        "--user",
        user,
        "-v",
        f"{TIMING_CACHE_VOLUME}:/cache",
    ]
    for mount in mounts:
        command += ["-v", f"{mount}:{mount}"]
    command += ["-w", str(workdir), image, *argv]
    return shlex.join(command)
