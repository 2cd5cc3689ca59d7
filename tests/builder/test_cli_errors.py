"""build-repo reports a user error in one place, for the build and its subcommands: one line on
stderr and exit code 2; with --debug (or $SEGSTACK_DEBUG) the traceback instead."""

from __future__ import annotations

import pytest

from segcontract.errors import DEBUG_ENV
from tests.conftest import MODEL, run_cli

# a batching that does not fit: refused while the options are parsed, before any slow import
MISFIT = ["--model", MODEL, "--max-batch-size", "8", "--preferred-batch-sizes", "16"]
MESSAGE = "build-repo: error: --preferred-batch-sizes [16] exceed --max-batch-size 8"


@pytest.fixture(autouse=True)
def _no_debug_setting(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def test_a_user_error_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("build-repo", *MISFIT, "-o", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2
    assert proc.stderr == MESSAGE + "\n" and proc.stdout == ""
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("how", ["--debug", DEBUG_ENV])
def test_debug_shows_the_traceback(tmp_path, monkeypatch, how):
    debug = [how] if how == "--debug" else []
    if how == DEBUG_ENV:
        monkeypatch.setenv(DEBUG_ENV, "1")
    proc = run_cli("build-repo", *debug, *MISFIT, "-o", str(tmp_path / "r"), check=False)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "builder.errors.BuildError: " + MESSAGE.removeprefix("build-repo: error: ")


def test_debug_is_not_a_build_option(tmp_path):
    """It belongs to the group: a subcommand takes it, where build options are refused."""
    proc = run_cli("build-repo", "--debug", "doctor", str(tmp_path))
    assert proc.stdout.strip() == f"{tmp_path}: no TensorRT engines (tensorrt_plan models); nothing to check"
    refused = run_cli("build-repo", "--debug", "--fp16", "doctor", str(tmp_path), check=False)
    assert refused.returncode == 2 and "--fp16: build options" in refused.stderr
    assert "--debug" not in refused.stderr


def test_debug_is_in_the_help():
    assert "--debug" in run_cli("build-repo", "--help").stdout
