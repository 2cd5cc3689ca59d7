"""Put a runnable tritonserver in place from the nvidia-pytriton wheel.

The wheel ships a real tritonserver (2.51 for wheel 0.7.0) with the Python backend only. We do not
install the wheel itself: it pins numpy<2, which clashes with current opencv/onnxruntime. Instead we
download it with pip and extract the server, its bundled shared libraries, and the Python-backend
stub that matches this interpreter into ``<prefix>/tritonserver``:

    bin/tritonserver
    lib/                    (nvidia_pytriton.libs: LD_LIBRARY_PATH)
    backends/python/        (libtriton_python.so, utils, and the stub for this Python)
    python/                 (a virtual environment with python_backend_models/requirements.txt)

The stub imports packages from the first ``python3`` on PATH, so the launcher puts
``python/bin`` first: the models then run with exactly the serving dependencies, as in the NGC
serving image, whatever the user's own environment holds (numpy 2, torch, ...).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from python_backend_models import REQUIREMENTS_FILE as REQUIREMENTS
from segcontract import tool_locations

PYTRITON_WHEEL = "nvidia-pytriton==0.7.0"
SERVER_PREFIX = "pytriton/tritonserver/"
LIBS_PREFIX = "nvidia_pytriton.libs/"


def default_install_dir() -> Path:
    """Where `make setup` puts the server: inside the active environment."""
    return tool_locations.tritonserver_home()


def python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def python_env_bin(root: Path) -> Path:
    return root / "python" / "bin"


def is_installed(root: Path) -> bool:
    return all(
        p.is_file()
        for p in (
            root / "bin" / "tritonserver",
            root / "backends" / "python" / "triton_python_backend_stub",
            python_env_bin(root) / ".requirements-installed",
        )
    )


def create_python_env(root: Path) -> None:
    """The environment the Python-backend stub runs in (same interpreter version as the stub),
    made beside the one in place and swapped in only once pip has installed everything, so a
    failed install (offline, say) leaves the working one as it was."""
    env_dir = root / "python"
    staging = root / "python.new"
    if staging.exists():
        shutil.rmtree(staging)  # our own leftover from an interrupted refresh
    subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
    try:
        pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        (staging / "bin" / ".requirements-installed").write_text(REQUIREMENTS.read_text())
        # a venv records its own path in its scripts and pyvenv.cfg: make it again where it will live
        retired = root / "python.old"
        if retired.exists():
            shutil.rmtree(retired)
        if env_dir.exists():
            env_dir.rename(retired)
        staging.rename(env_dir)
        subprocess.run([sys.executable, "-m", "venv", "--upgrade", str(env_dir)], check=True)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_wheel(spec: str, dest: Path) -> Path:
    """``pip download`` one binary wheel (no dependencies) into ``dest``; return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
    ]
    subprocess.run([*cmd, spec], check=True)
    name = spec.split("==")[0].replace("-", "_")
    wheels = sorted(dest.glob(f"{name}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {spec} produced no wheel in {dest}")
    return wheels[0]


def extract_server(wheel: Path, root: Path) -> None:
    """Extract into a temporary sibling folder, then rename it into place (atomic)."""
    stub_member = f"{SERVER_PREFIX}python_backend_stubs/{python_tag()}/triton_python_backend_stub"
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tritonserver-", dir=root.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            if stub_member not in names:
                raise RuntimeError(
                    f"{wheel.name} has no Python-backend stub for Python {python_tag()}; use Python 3.8-3.13"
                )
            for name in names:
                if name.endswith("/"):
                    continue
                if name.startswith(LIBS_PREFIX):
                    target = staging / "lib" / name[len(LIBS_PREFIX) :]
                elif name.startswith(SERVER_PREFIX + "bin/") or name.startswith(SERVER_PREFIX + "backends/"):
                    target = staging / name[len(SERVER_PREFIX) :]
                elif name == stub_member:
                    target = staging / "backends" / "python" / "triton_python_backend_stub"
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for exe in (
            staging / "bin" / "tritonserver",
            staging / "backends" / "python" / "triton_python_backend_stub",
        ):
            exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def python_env_current(root: Path) -> bool:
    """Whether the server's Python environment holds today's requirements (a new runtime, such as
    OpenVINO, adds one)."""
    stamp = python_env_bin(root) / ".requirements-installed"
    return stamp.is_file() and stamp.read_text() == REQUIREMENTS.read_text()


def install(root: Path | None = None, wheel: Path | None = None, force: bool = False) -> Path:
    root = root or default_install_dir()
    if is_installed(root) and not force:
        if not python_env_current(root):  # the server is there; only its packages changed
            create_python_env(root)
        return root
    with tempfile.TemporaryDirectory() as tmp:
        extract_server(wheel or download_wheel(PYTRITON_WHEEL, Path(tmp)), root)
    create_python_env(root)
    return root


def main() -> None:
    root = install(force="--force" in sys.argv)
    print(f"tritonserver ready in {root}")


if __name__ == "__main__":
    main()
