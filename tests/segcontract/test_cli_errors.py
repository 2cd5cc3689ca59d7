"""seg-client and seg-serve report a user error (``segcontract.errors.SegstackError``) in one place:
one line on stderr, no traceback; with --debug or $SEGSTACK_DEBUG the traceback instead.
(build-repo and seg-train: tests/builder/test_cli_errors.py, tests/training/test_cli_errors.py.)"""

from __future__ import annotations

import socket
import subprocess

import pytest
from click.testing import CliRunner

from clients.cli import main as seg_client
from clients.triton.client import ClientError
from segcontract.errors import DEBUG_ENV
from tests.conftest import run_cli


@pytest.fixture
def missing_group(monkeypatch, tmp_path) -> list[str]:
    """``seg-client infer`` on a group that is not there: the command leaves the error to
    seg-client's one handler."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    return [
        "infer",
        "--group",
        "nope",
        "--data-root",
        str(tmp_path),
        "--model",
        "m",
        "--out",
        str(tmp_path / "o"),
    ]


def test_seg_client_turns_a_user_error_into_one_line_and_exit_2(missing_group, tmp_path):
    datasets = tmp_path / "DATA" / "datasets"
    result = CliRunner().invoke(seg_client, missing_group)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == (
        f"seg-client: error: group 'nope' not found: looked for {datasets / 'nope.txt'}, "
        f"{datasets / 'nope.csv'}, {datasets / 'nope'}; pass --data-root, or --source DIR for a plain "
        "folder\n"
    )
    assert result.stdout == ""


def test_seg_client_debug_keeps_the_traceback(missing_group):
    for args, env in ((["--debug", *missing_group], {}), (missing_group, {DEBUG_ENV: "1"})):
        result = CliRunner().invoke(seg_client, args, env=env)
        assert isinstance(result.exception, ClientError), (args, result.output)
        assert result.exit_code == 1 and "seg-client: error:" not in result.stderr


def test_seg_client_debug_is_in_the_help():
    assert "--debug" in CliRunner().invoke(seg_client, ["--help"]).stdout


def _serve_on(port: int, repository, *extra: str) -> subprocess.CompletedProcess:
    args = ["--model-repository", str(repository), "--http-port", str(port), "--grpc-port", "0",
            "--metrics-port", "0", *extra]  # fmt: skip
    return run_cli("seg-serve", *args, check=False, timeout=120)


@pytest.fixture
def taken_port():
    from serving import tritonserver_install

    if not tritonserver_install.is_installed(tritonserver_install.default_install_dir()):
        pytest.skip("no bundled tritonserver here (seg-serve would install it first)")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "removed what dead servers left" not in line]


def test_seg_serve_turns_a_user_error_into_one_line(tmp_path, taken_port, monkeypatch):
    """A port that is taken: the server's failure to start, exit 1 as seg-serve has always said it."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    proc = _serve_on(taken_port, tmp_path)
    assert proc.returncode == 1
    (line,) = _errors(proc.stderr)
    assert line.startswith(f"seg-serve: error: http port {taken_port} on 127.0.0.1 is already in use")
    assert line.endswith("; stop that server, or pass --http-port with another port (0 picks a free one)")


def test_seg_serve_debug_shows_the_traceback(tmp_path, taken_port, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    for extra in (("--debug",), ()):
        if not extra:
            monkeypatch.setenv(DEBUG_ENV, "1")
        proc = _serve_on(taken_port, tmp_path, *extra)
        assert proc.returncode == 1
        assert "Traceback" in proc.stderr and "serving.tritonserver.PortInUse" in proc.stderr, proc.stderr
        assert "seg-serve: error:" not in proc.stderr
