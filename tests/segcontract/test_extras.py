"""segcontract.extras: which module of an extra is missing, the one line a console script prints
for it, and that build-repo and seg-train check before their CLI is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from builder import entry as build_entry
from segcontract import extras
from tests.conftest import REPO_ROOT
from training import entry as train_entry

ABSENT = "segstack_no_such_module"


def test_missing_extra_names_the_first_module_not_installed():
    assert extras.missing_extra(["json", "importlib"]) is None
    assert extras.missing_extra(["json", ABSENT, "importlib"]) == ABSENT
    assert extras.missing_extra([f"{ABSENT}.sub"]) == f"{ABSENT}.sub"
    assert extras.missing_extra([]) is None


def test_a_module_blocked_in_sys_modules_counts_as_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "json", None)
    assert extras.missing_extra(["json"]) == "json"


def test_require_extra_prints_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(extras.EXTRA_MODULES, "build", ("json", ABSENT))
    with pytest.raises(SystemExit) as exited:
        extras.require_extra("build-repo", "build")
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"build-repo: needs the build extra: pip install 'segstack[build]' ({ABSENT} is not installed)\n"
    )


def test_this_environment_has_every_extra():
    """make setup installs them all: build-repo and seg-train run here."""
    for extra in extras.EXTRA_MODULES:
        assert extras.missing_extra_line("seg-x", extra) is None, extra


@pytest.mark.parametrize(
    ("entry", "command", "extra", "cli"),
    [
        (build_entry, "build-repo", "build", "builder.cli"),
        (train_entry, "seg-train", "train", "training.cli"),
    ],
)
def test_the_console_scripts_check_their_extra_before_importing_the_cli(
    entry, command, extra, cli, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "torch", None)  # not installed, as far as imports go
    monkeypatch.setitem(sys.modules, cli, None)  # importing the CLI would raise ImportError
    with pytest.raises(SystemExit) as exited:
        entry.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"{command}: needs the {extra} extra: pip install 'segstack[{extra}]' (torch is not installed)\n"
    )


@pytest.mark.parametrize(("entry", "usage"), [(build_entry, "build-repo"), (train_entry, "seg-train")])
def test_with_the_extra_installed_the_console_scripts_run_the_cli(entry, usage, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [usage, "--help"])
    with pytest.raises(SystemExit) as exited:
        entry.main()
    assert exited.value.code == 0
    assert f"Usage: {usage}" in capsys.readouterr().out


def test_the_entry_modules_import_nothing_heavy():
    code = (
        "import sys, builder.entry, training.entry\n"
        "heavy = {'torch', 'ultralytics', 'onnx', 'lightning', 'click', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run = {"cwd": REPO_ROOT, "capture_output": True, "text": True, "timeout": 60}
    proc = subprocess.run([sys.executable, "-c", code], **run)
    assert proc.returncode == 0, proc.stderr
