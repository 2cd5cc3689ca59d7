"""The share of the CPUs each network session of the python-onnx and onnx runtimes takes."""

from __future__ import annotations

import os

import pytest

from segops.cpu_cores import cores_seen, threads_per_instance

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    "cpu_max, expected",
    [
        (None, AFFINITY),  # no cgroup v2 file: the affinity mask
        ("max 100000\n", AFFINITY),  # no quota
        ("100000 100000\n", 1),  # docker run --cpus 1
        ("150000 100000\n", min(2, AFFINITY)),  # a fraction of a core more counts as a core
        ("6400000 100000\n", AFFINITY),  # a quota above the CPUs there are
        ("garbage", AFFINITY),
        ("abc 100000", AFFINITY),
        ("100000 0", AFFINITY),
    ],
)
def test_cores_seen_is_the_affinity_capped_by_the_cgroup_quota(tmp_path, cpu_max, expected):
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    assert cores_seen(path) == expected


@pytest.mark.parametrize(
    "instances, cores, expected", [(2, 2, 1), (1, 2, 2), (2, 16, 8), (3, 16, 5), (4, 2, 1), (0, 4, 4)]
)
def test_the_instances_share_the_cores_at_least_one_thread_each(instances, cores, expected):
    assert threads_per_instance(instances, cores) == expected
