"""How many CPUs a process may really use, and the session threads that fill them.

``os.cpu_count()`` counts the host's CPUs; a container (``docker run --cpus``, a Kubernetes CPU
limit) or a CPU affinity mask gives a process fewer, and sessions sized to the host then fight
over them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def cores_seen(cgroup_cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on (its affinity), capped by its cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        limit = math.ceil(int(quota) / int(period))
    except (OSError, ValueError, ZeroDivisionError):  # no file, "max" (no quota), or unreadable
        return max(1, cores)
    return max(1, min(cores, limit))


def threads_per_instance(instances: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``instances`` sessions so that together they fill the cores
    (at least one each)."""
    return max(1, (cores if cores is not None else cores_seen()) // max(1, instances))


def configured_threads(parameters: dict[str, str], model_config: dict) -> tuple[int, str | None]:
    """The intra-op threads of a Python-backend network session: the ``intra_op_threads``
    parameter when build-repo wrote one (0: the runtime's default, every core), else the share of
    the cores seen among the model's instances; with a line for the server's log in that case."""
    if "intra_op_threads" in parameters:
        return int(parameters["intra_op_threads"]), None
    groups = model_config.get("instance_group", [])
    instances = sum(int(g.get("count", 1)) for g in groups) or 1
    cores = cores_seen()
    threads = threads_per_instance(instances, cores)
    return threads, f"{instances} instances on {cores} cores, {threads} intra-op threads each"
