"""Start and stop a real tritonserver process.

Two kinds of server are supported: one on PATH (the NGC image, or any Triton install), and the one
extracted from the nvidia-pytriton wheel by :mod:`serving.tritonserver_install`. The latter needs
its bundled libraries on LD_LIBRARY_PATH, a backend directory that holds the Python-backend stub
matching this interpreter, and the serving environment's ``bin`` first on PATH so the stub finds
its Python packages (numpy<2, onnxruntime, ...): PYTHONPATH is not honoured by the stub.

A server never outlives the thread that started it: it is started with a parent-death signal
(SIGKILL), so even a ``kill -9`` of seg-serve takes it down and frees its ports. What a dead
server leaves behind (Python-backend stubs, ``/dev/shm`` regions) is handled by
:mod:`serving.leftovers`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from segcontract.errors import SegstackError
from serving import leftovers, tritonserver_install

LOOPBACK = "127.0.0.1"

# Run by this interpreter in the child before it becomes tritonserver: ask the kernel for SIGKILL
# when the launching thread dies (kept across exec), then check the launcher did not die first.
# A small exec wrapper rather than preexec_fn: that one forbids vfork and is unsafe with threads.
_EXEC_WITH_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
    sys.exit(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


class ServerError(SegstackError, RuntimeError):
    """The server could not be started, or stopped before it became ready."""


class PortInUse(ServerError):
    """One of the requested ports is taken; ``kind`` is http, grpc or metrics."""

    def __init__(self, kind: str, port: int, holder: str) -> None:
        super().__init__(f"{kind} port {port} on {LOOPBACK} is already in use{holder}")
        self.kind, self.port, self.holder = kind, port, holder


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in range(3)))

    def named(self) -> dict[str, int]:
        return {"http": self.http, "grpc": self.grpc, "metrics": self.metrics}

    def check_free(self) -> None:
        """Raise :class:`PortInUse` for the first port a server could not listen on."""
        for kind, port in self.named().items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is fine
                try:
                    s.bind((LOOPBACK, port))
                except OSError:
                    raise PortInUse(kind, port, _listener(port)) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _listening_ports(pid: int) -> set[int]:
    try:
        proc = psutil.Process(pid)
        conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def _listener(port: int) -> str:
    """`` by NAME (pid N)`` for the process listening on ``port``, when this user may see it."""
    for proc in psutil.process_iter(["name"]):
        if port in _listening_ports(proc.pid):
            return f" by {proc.info['name']} (pid {proc.pid})"
    return ""


@dataclass
class ServerInstall:
    """A tritonserver binary and what its environment must contain to run it."""

    binary: Path
    backend_dir: Path | None = None
    lib_dir: Path | None = None
    python_bin: Path | None = None

    @classmethod
    def locate(cls, auto_install: bool = True) -> ServerInstall:
        """A tritonserver on PATH wins; else the one extracted from the nvidia-pytriton wheel."""
        on_path = shutil.which("tritonserver")
        if on_path:
            return cls(Path(on_path))
        root = tritonserver_install.default_install_dir()
        if not tritonserver_install.is_installed(root):
            if not auto_install:
                raise ServerError(
                    f"no tritonserver on PATH and none in {root}; "
                    "run `python -m serving.tritonserver_install` (make setup does it)"
                )
            print(f"Installing tritonserver from {tritonserver_install.PYTRITON_WHEEL} into {root}")
            try:
                tritonserver_install.install(root)
            except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
                raise ServerError(
                    f"could not install tritonserver into {root} ({exc}); "
                    "run `python -m serving.tritonserver_install` where pip can reach the package index"
                ) from None
        elif auto_install and not tritonserver_install.python_env_current(root):
            # the served models' packages changed (a new runtime: openvino): the old ones still serve
            print(f"Updating the models' Python environment in {root / 'python'}", file=sys.stderr)
            try:
                tritonserver_install.create_python_env(root)
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"warning: could not update it ({exc}); models needing the new packages will not load",
                      file=sys.stderr)  # fmt: skip
        return cls(
            root / "bin" / "tritonserver",
            root / "backends",
            root / "lib",
            tritonserver_install.python_env_bin(root),
        )

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        python_bin = self.python_bin or Path(sys.executable).parent
        env["PATH"] = os.pathsep.join([str(python_bin), env.get("PATH", "")])
        if self.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env


@dataclass
class TritonServer:
    """One tritonserver process on loopback ports; use as a context manager or start()/stop()."""

    model_repository: Path
    ports: Ports = field(default_factory=Ports.free)
    install: ServerInstall | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    shm_prefix: str = ""
    cleaned_leftovers: leftovers.Cleaned = field(default_factory=lambda: leftovers.Cleaned([], []))
    _log_file: object = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"127.0.0.1:{self.ports.metrics}"

    def command(self) -> list[str]:
        install = self.install
        assert install is not None
        cmd = [
            str(install.binary),
            f"--model-repository={Path(self.model_repository).resolve()}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            "--allow-metrics=true",
            "--exit-on-error=true",
        ]
        if self.shm_prefix:
            cmd.append(f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}")
        if install.backend_dir is not None:
            cmd.append(f"--backend-directory={install.backend_dir}")
        return cmd + list(self.extra_args)

    def start(self, timeout_s: float = 120.0, cancel: threading.Event | None = None) -> TritonServer:
        """Start and wait until every model is ready; ``cancel`` (set by a signal handler) aborts.

        First removes what dead servers left behind (``cleaned_leftovers`` lists it), and refuses
        ports that are taken (:class:`PortInUse`). The server is killed when the calling thread
        ends, so start it from a thread that lives as long as the server should."""
        if self.install is None:
            self.install = ServerInstall.locate()
        if not Path(self.model_repository).is_dir():
            raise ServerError(f"model repository {self.model_repository} is not a folder")
        self.cleaned_leftovers = leftovers.clean_stale()
        self.ports.check_free()
        self.shm_prefix = leftovers.new_prefix()
        stdout = None
        if self.log_path is not None:
            try:
                Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
                self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            except OSError as exc:
                raise ServerError(f"cannot write the log file {self.log_path}: {exc.strerror}") from None
            stdout = self._log_file
        wrapper = [sys.executable, "-I", "-S", "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid())]
        self.process = subprocess.Popen(
            [*wrapper, *self.command()],
            env=self.install.environment(),
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the server
        )
        self.wait_ready(timeout_s, cancel)
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float, cancel: threading.Event | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.stop()
                raise ServerError("stopped before the server was ready")
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                self.stop()
                where = f"; see {self.log_path}" if self.log_path else ""
                raise ServerError(f"tritonserver exited with code {code} before it was ready{where}")
            if self.is_ready() and self._owns_ports():
                return
            time.sleep(0.2)
        self.stop()
        raise ServerError(f"tritonserver was not ready within {timeout_s:.0f} s")

    def _owns_ports(self) -> bool:
        """Whether the HTTP endpoint that answered is this process's, and gRPC is up too.

        Anything else answering on our HTTP port (a server started between the port check and
        ours) is an error: its "ready" says nothing about this server."""
        assert self.process is not None
        listening = _listening_ports(self.process.pid)
        if self.ports.http not in listening:
            self.stop()
            raise ServerError(
                f"another process{_listener(self.ports.http)} answers on HTTP port {self.ports.http}; "
                "this tritonserver did not get it"
            )
        return self.ports.grpc in listening

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM by PID (Triton drains in-flight requests and stops its Python-backend stubs);
        if it does not exit in time, SIGKILL its whole process group, stubs included. Then,
        however the server ended, kill any stub of it still running and remove its regions."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: pgid == pid
                proc.wait()
        if proc is not None and self.shm_prefix:
            leftovers.clean_server(self.shm_prefix)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
