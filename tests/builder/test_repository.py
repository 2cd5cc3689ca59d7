"""Re-building replaces a model's folders atomically and leaves the other models alone."""

import pytest

from builder import repository, triton_config
from builder.model_folder import ModelFolder
from segcontract.tensors import TensorSpec


def _folder(name, marker, tmp_path):
    config = triton_config.python_model_config(
        triton_config.ModelSettings(
            name, [TensorSpec("x", "float32", (3,))], [TensorSpec("y", "float32", (3,))], 4
        )
    )
    source = tmp_path / f"{name}-{marker}.txt"
    source.write_text(marker)
    return ModelFolder(name, config, files={"1/marker.txt": source})


def test_rebuild_replaces_its_models_and_keeps_others(tmp_path):
    repo = tmp_path / "repo"
    repository.write_models(repo, [_folder("other", "keep", tmp_path)])
    repository.write_models(repo, [_folder("mine", "v1", tmp_path)])
    (repo / "mine" / "1" / "stale.txt").write_text("left over from v1")
    repository.write_models(repo, [_folder("mine", "v2", tmp_path)])
    assert (repo / "other" / "1" / "marker.txt").read_text() == "keep"
    assert (repo / "mine" / "1" / "marker.txt").read_text() == "v2"
    assert not (repo / "mine" / "1" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".repo.build-")) == []


def test_failed_build_leaves_the_repository_as_it_was(tmp_path):
    repo = tmp_path / "repo"
    repository.write_models(repo, [_folder("mine", "v1", tmp_path)])
    broken = _folder("mine", "v2", tmp_path)
    broken.files["1/missing.bin"] = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError):
        repository.write_models(repo, [broken])
    assert (repo / "mine" / "1" / "marker.txt").read_text() == "v1"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".repo.build-")]


def test_a_failed_swap_rolls_back_the_models_already_swapped(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repository.write_models(repo, [_folder("a", "v1", tmp_path), _folder("b", "v1", tmp_path)])
    real_rename = type(repo).rename

    def flaky_rename(self, target):
        if self.name == "b" and ".build-" in str(self.parent):  # the new "b" moving into place
            raise OSError("disk trouble")
        return real_rename(self, target)

    monkeypatch.setattr(type(repo), "rename", flaky_rename)
    with pytest.raises(OSError, match="disk trouble"):
        repository.write_models(repo, [_folder("a", "v2", tmp_path), _folder("b", "v2", tmp_path)])
    monkeypatch.undo()
    assert (repo / "a" / "1" / "marker.txt").read_text() == "v1"
    assert (repo / "b" / "1" / "marker.txt").read_text() == "v1"


def test_model_names_must_be_folder_names():
    from builder.errors import BuildError
    from builder.families import BuildSettings

    with pytest.raises(BuildError, match="--name 'a/b'"):
        BuildSettings(name="a/b")
    assert BuildSettings(name="yolov8n-seg.v2").name == "yolov8n-seg.v2"


def test_a_folder_build_repo_did_not_write_is_never_replaced(tmp_path):
    from builder.errors import BuildError

    repo = tmp_path / "repo"
    mine = repo / "mine"
    (mine / "1").mkdir(parents=True)
    (mine / "config.pbtxt").write_text('name: "mine"  # written by hand\n')
    with pytest.raises(BuildError, match=r"mine exists and was not written by build-repo"):
        repository.write_models(repo, [_folder("other", "v1", tmp_path), _folder("mine", "v1", tmp_path)])
    assert (mine / "config.pbtxt").read_text() == 'name: "mine"  # written by hand\n'
    assert sorted(p.name for p in repo.iterdir()) == ["mine"]  # nothing changed, not even "other"
    (repo / "empty").mkdir()  # an empty folder holds nothing to lose
    repository.write_models(repo, [_folder("empty", "v1", tmp_path)])
    assert (repo / "empty" / "1" / "marker.txt").read_text() == "v1"
