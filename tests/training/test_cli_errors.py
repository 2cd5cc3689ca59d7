"""seg-train reports a user error in one place, for every command: one line on stderr and exit
code 2; with --debug (or $SEGSTACK_DEBUG) the traceback instead. Its --db and --data-root are the
store's options, with the store's help."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from segcontract.errors import DEBUG_ENV
from store.cli_options import DATA_ROOT_OPTION, DB_OPTION
from tests.conftest import run_cli
from training.cli import main
from training.coco2yolo import DatasetError


@pytest.fixture(autouse=True)
def _no_debug_setting(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _coco2yolo_of_nothing(tmp_path) -> list[str]:
    return ["coco2yolo", "--src-dir", str(tmp_path / "nope"), "--dst-dir", str(tmp_path / "out")]


def _message(tmp_path) -> str:
    return f"{tmp_path / 'nope'}: no such folder; --src-dir takes a folder of COCO exports"


def test_a_user_error_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(main, _coco2yolo_of_nothing(tmp_path))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == f"seg-train: error: {_message(tmp_path)}\n" and result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_debug_keeps_the_error(tmp_path):
    for args, env in ((["--debug"], {}), ([], {DEBUG_ENV: "1"})):
        result = CliRunner().invoke(main, [*args, *_coco2yolo_of_nothing(tmp_path)], env=env)
        assert isinstance(result.exception, DatasetError), result.output
        assert str(result.exception) == _message(tmp_path) and "seg-train: error:" not in result.stderr


def test_debug_shows_the_traceback_in_the_console_script(tmp_path):
    proc = run_cli("seg-train", "--debug", *_coco2yolo_of_nothing(tmp_path), check=False)
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"training.coco_sources.DatasetError: {_message(tmp_path)}"
    plain = run_cli("seg-train", *_coco2yolo_of_nothing(tmp_path), check=False)
    assert plain.returncode == 2 and plain.stderr == f"seg-train: error: {_message(tmp_path)}\n"


def _options(*decorators) -> dict[str, click.Option]:
    def command() -> None:
        pass

    for decorator in decorators:
        command = decorator(command)
    return {p.name: p for p in click.command()(command).params}


@pytest.mark.parametrize(
    ("command", "names"), [("classify", ["db", "data_root"]), ("wandb-pull", ["data_root"])]
)
def test_db_and_data_root_are_the_stores_options(command, names):
    shared = _options(DB_OPTION, DATA_ROOT_OPTION)
    params = {p.name: p for p in main.commands[command].params}
    for name in names:
        ours, theirs = params[name], shared[name]
        assert (ours.opts, ours.help, ours.default, ours.metavar) == (
            theirs.opts,
            theirs.help,
            theirs.default,
            theirs.metavar,
        ), name
