"""Put perf_analyzer in place, matching the pip-shipped tritonserver (2.51).

Current tritonclient wheels no longer carry it; the ``tritonclient==2.51.0`` manylinux wheel does
(``bin/perf_analyzer``). It needs ``libcudart.so.12`` (from the nvidia-cuda-runtime-cu12 wheel, even
on CPU) and ``libb64.so.0d`` (Debian's libb64-0d). We extract all three into
``<prefix>/tritonserver/perf_analyzer/{bin,lib}`` rather than installing that wheel, whose grpc
extra pins protobuf<5. Nothing is installed system-wide.
"""

from __future__ import annotations

import glob
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from segcontract import tool_locations
from serving.tritonserver_install import download_wheel

TRITONCLIENT_WHEEL = "tritonclient==2.51.0"
CUDART_WHEEL = "nvidia-cuda-runtime-cu12"
LIBB64_DEB = "libb64-0d"


install_dir = tool_locations.perf_analyzer_home
binary = tool_locations.perf_analyzer_binary
lib_dir = tool_locations.perf_analyzer_lib_dir
is_installed = tool_locations.perf_analyzer_installed


def _extract(wheel: Path, member_suffix: str, target: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(member_suffix))
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _libb64(dest: Path, work: Path) -> None:
    """libb64.so.0d: already on the system, else extracted from Debian's package (apt-get download)."""
    found = glob.glob("/usr/lib/*/libb64.so.0d") + glob.glob("/usr/lib/libb64.so.0d")
    if found:
        shutil.copy(found[0], dest / "libb64.so.0d")
        return
    download = ["apt-get", "download", LIBB64_DEB]
    if subprocess.run(download, cwd=work, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(download, cwd=work, check=True, capture_output=True)
    deb = next(work.glob(f"{LIBB64_DEB}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "deb")], check=True)
    shutil.copy(next((work / "deb").rglob("libb64.so.0d")), dest / "libb64.so.0d")


def install(force: bool = False) -> Path:
    root = install_dir()
    if is_installed(root) and not force:
        return binary(root)
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        _extract(
            download_wheel(TRITONCLIENT_WHEEL, work), "/bin/perf_analyzer", staging / "bin" / "perf_analyzer"
        )
        exe = staging / "bin" / "perf_analyzer"
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        _extract(download_wheel(CUDART_WHEEL, work), "/libcudart.so.12", staging / "lib" / "libcudart.so.12")
        _libb64(staging / "lib", work)
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, root)
    return binary(root)


def main() -> None:
    try:
        path = install(force="--force" in sys.argv)
    except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
        sys.exit(
            f"perf_analyzer could not be installed ({exc}); seg-client bench needs it, the rest does not"
        )
    print(f"perf_analyzer ready: {path}")


if __name__ == "__main__":
    main()
