from pathlib import Path

import pytest

from clients.triton.client import ClientError
from clients.triton.image_sources import (
    DataLayout,
    ImageItem,
    images_in_folder,
    images_in_group,
    no_images_error,
    output_names,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_is_searched_recursively_for_images_only(tmp_path):
    for name in ["a.jpg", "sub/b.PNG", "notes.txt", "c.webp"]:
        _touch(tmp_path / name)
    assert [i.relative.as_posix() for i in images_in_folder(tmp_path)] == ["a.jpg", "c.webp", "sub/b.PNG"]


def test_groups_from_txt_csv_and_folder(tmp_path):
    layout = DataLayout(tmp_path)
    for name in ["x/1.jpg", "2.jpg"]:
        _touch(layout.pictures / name)
    layout.datasets.mkdir(parents=True)
    (layout.datasets / "test.txt").write_text("x/1.jpg\n# comment\n2.jpg\n")
    (layout.datasets / "val.csv").write_text("image,label\nx/1.jpg,cat\n2.jpg,dog\n")
    _touch(layout.datasets / "folder" / "3.jpg")
    for group in ("test", "val"):
        items = images_in_group(group, layout)
        assert [i.path for i in items] == [layout.pictures / "x/1.jpg", layout.pictures / "2.jpg"]
    assert [i.relative.as_posix() for i in images_in_group("folder", layout)] == ["3.jpg"]


def test_unknown_group_says_where_it_looked(tmp_path):
    with pytest.raises(ClientError, match=r"group 'nope' not found.*DATA/datasets/nope.txt"):
        images_in_group("nope", DataLayout(tmp_path))


def test_output_names_keep_folders_and_split_shared_stems():
    items = [ImageItem(Path(p), Path(p)) for p in ["a.jpg", "a.png", "b.jpg", "sub/b.jpg"]]
    names = {i.relative.as_posix(): n.as_posix() for i, n in output_names(items).items()}
    assert names == {"a.jpg": "a.jpg", "a.png": "a.png", "b.jpg": "b", "sub/b.jpg": "sub/b"}


def test_output_names_never_collide_or_escape(tmp_path):
    items = [
        ImageItem(Path("/x/a/img.jpg"), Path("img.jpg")),
        ImageItem(Path("/y/b/img.jpg"), Path("img.jpg")),
        ImageItem(Path("/z/out.jpg"), Path("../../out.jpg")),
    ]
    names = output_names(items)
    assert len(set(names.values())) == 3
    assert all(".." not in n.parts and not n.is_absolute() for n in names.values())
    assert names[items[2]] == Path("out")


def test_the_output_folder_is_not_an_input(tmp_path):
    for name in ["a.jpg", "results/overlays/a.jpg"]:
        _touch(tmp_path / name)
    assert [i.relative.as_posix() for i in images_in_folder(tmp_path, exclude=tmp_path / "results")] == [
        "a.jpg"
    ]


def test_dangling_symlinks_and_gifs_are_listed_so_that_they_are_reported(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "b.gif")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    listed = [i.relative.as_posix() for i in images_in_folder(tmp_path, exclude=tmp_path / "out")]
    assert listed == ["a.jpg", "b.gif", "gone.png", "loop.jpg"]


def test_a_folder_without_images_is_an_error_that_says_what_it_holds(tmp_path):
    _touch(tmp_path / "notes.txt")
    assert "it holds 1 other files" in str(no_images_error(tmp_path))
    (tmp_path / "empty").mkdir()
    assert "it is empty" in str(no_images_error(tmp_path / "empty"))
