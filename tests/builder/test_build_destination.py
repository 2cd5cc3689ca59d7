"""build-repo refuses a destination it could not write before the slow steps, not after them.

Run without --quiet: build-repo prints a progress line as each step starts ("loading ...",
"exporting ONNX ..."), so a refusal that comes first is the only line on stderr.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import MODEL, run_cli


def _build(weights: Path, output: Path):
    return run_cli("build-repo", "--model", MODEL, "--weights", str(weights), "-o", str(output), check=False)


def _refused_before_loading(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"work was done before the refusal:\n{proc.stderr}"
    assert lines[0].startswith("build-repo: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _staging_left(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".build-" in p.name]


def test_an_output_that_is_a_file_is_refused_before_the_export(tmp_path, yolo_checkpoint):
    output = tmp_path / "repo"
    output.write_text("my notes\n")
    line = _refused_before_loading(
        _build(yolo_checkpoint, output), f"cannot write into --output {output}: it is a file"
    )
    assert "nothing was built" in line
    assert output.read_text() == "my notes\n" and not _staging_left(tmp_path)


def test_an_output_below_a_file_is_refused_before_the_export(tmp_path, yolo_checkpoint):
    (tmp_path / "file").write_text("x")
    output = tmp_path / "file" / "repo"
    _refused_before_loading(
        _build(yolo_checkpoint, output), f"cannot write into --output {output}", "is not a folder"
    )
    assert not _staging_left(tmp_path)


def test_a_model_folder_build_repo_did_not_write_is_refused_before_the_export(tmp_path, yolo_checkpoint):
    output = tmp_path / "repo"
    mine = output / MODEL
    (mine / "1").mkdir(parents=True)
    (mine / "1" / "model.py").write_text("# my own model\n")
    _refused_before_loading(
        _build(yolo_checkpoint, output), f"{mine} exists and was not written by build-repo"
    )
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*")) == [
        MODEL, f"{MODEL}/1", f"{MODEL}/1/model.py"
    ]  # fmt: skip
    assert not _staging_left(tmp_path) and not _staging_left(output)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_output_it_may_not_write_is_refused_before_the_export(tmp_path, yolo_checkpoint):
    output = tmp_path / "repo"
    output.mkdir()
    output.chmod(0o555)
    try:
        _refused_before_loading(_build(yolo_checkpoint, output), "no permission to write in")
    finally:
        output.chmod(0o755)
