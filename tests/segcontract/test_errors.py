"""The one exception root and the one way a command line reports it: one line on stderr and exit
code 2; the traceback only with --debug or $SEGSTACK_DEBUG; anything else passes untouched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segcontract import errors
from segcontract.errors import DEBUG_ENV, EXIT_CODE, SegstackError, error_line, one_line, reported
from tests.conftest import REPO_ROOT


class _Refused(SegstackError):
    pass


class _Other(SegstackError):
    pass


def test_a_user_error_is_one_line_and_exit_code_2(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exited, reported("seg-x"):
        raise _Refused("data.yaml: no such file;\n  pass --data   a file")
    assert exited.value.code == EXIT_CODE == 2
    assert exited.value.__cause__ is None and exited.value.__suppress_context__
    assert capsys.readouterr().err == "seg-x: error: data.yaml: no such file; pass --data a file\n"


@pytest.mark.parametrize("setting", ["1", "yes", "true"])
def test_debug_keeps_the_error_and_its_traceback(monkeypatch, setting):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(_Refused), reported("seg-x", debug=True):
        raise _Refused("x")
    monkeypatch.setenv(DEBUG_ENV, setting)
    with pytest.raises(_Refused), reported("seg-x"):
        raise _Refused("x")


@pytest.mark.parametrize("setting", ["", "0", " 0 "])
def test_an_empty_or_zero_debug_setting_is_off(monkeypatch, setting, capsys):
    monkeypatch.setenv(DEBUG_ENV, setting)
    with pytest.raises(SystemExit), reported("seg-x"):
        raise _Refused("x")
    assert capsys.readouterr().err == "seg-x: error: x\n"


def test_other_exceptions_pass_untouched(monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    for exc in (ValueError("a bug"), KeyboardInterrupt(), SystemExit(1)):
        with pytest.raises(type(exc)), reported("seg-x"):
            raise exc
    assert capsys.readouterr().err == ""
    with reported("seg-x"):
        pass


def test_a_command_may_keep_another_exit_code_for_some_errors(monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as exited, reported("seg-x", exit_codes={_Refused: 1}):
        raise _Refused("the server stopped")
    assert exited.value.code == 1
    with pytest.raises(SystemExit) as exited, reported("seg-x", exit_codes={_Refused: 1}):
        raise _Other("a wrong option")
    assert exited.value.code == EXIT_CODE
    assert capsys.readouterr().err.splitlines() == [
        "seg-x: error: the server stopped",
        "seg-x: error: a wrong option",
    ]


def test_a_message_is_never_empty():
    assert one_line(_Refused()) == "_Refused"
    assert error_line("seg-x", _Refused(" \n ")) == "seg-x: error: _Refused"


def test_the_root_is_standard_library_only():
    """segcontract ships into every Python-backend model and is imported before click."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import segcontract.errors; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    run = [sys.executable, "-I", "-S", "-c", code]  # no site: nothing but the standard library is found
    loaded = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    beyond = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"segcontract", "__main__"}
    assert not beyond, beyond
    assert errors.SegstackError.__bases__ == (Exception,)
