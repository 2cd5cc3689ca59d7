"""The data layout and its groups: lists (.txt, .csv) and folders under DATA/datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.errors import StoreError
from store.layout import DataLayout, GroupImage, group_images, group_index


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    layout = DataLayout(tmp_path)
    layout.datasets.mkdir(parents=True)
    layout.pictures.mkdir(parents=True)
    return layout


def names(images: list[GroupImage]) -> list[str]:
    return [i.name.as_posix() for i in images]


def test_layout_folders(tmp_path):
    layout = DataLayout(tmp_path)
    assert layout.pictures == tmp_path / "DATA" / "pictures"
    assert layout.meta == tmp_path / "DATA" / "meta"
    assert layout.datasets == tmp_path / "DATA" / "datasets"
    assert layout.models == tmp_path / "DATA" / "models"
    assert layout.database == tmp_path / "DATA" / "segments.db"
    assert layout.inference == tmp_path / "TEST" / "inference"
    assert layout.masks == tmp_path / "MARKUP" / "masks"
    assert DataLayout().database == Path("DATA/segments.db")


def test_group_from_txt(layout, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "x.png"
    (layout.datasets / "cats.txt").write_text(
        f"# the cats\n\na/1.jpg\n  b/2.png  \n   # an indented comment\n{elsewhere}\n"
    )
    images = group_images("cats", layout)
    assert names(images) == ["a/1.jpg", "b/2.png", "x.png"]
    assert [i.path for i in images] == [layout.pictures / "a/1.jpg", layout.pictures / "b/2.png", elsewhere]


def test_group_from_csv_with_a_header(layout):
    (layout.datasets / "dogs.csv").write_text("id,Image,label\n1,a/1.jpg,dog\n2,,dog\n3,b/2.jpg,dog\n4\n")
    images = group_images("dogs", layout)
    assert names(images) == ["a/1.jpg", "b/2.jpg"]
    assert images[0].path == layout.pictures / "a/1.jpg"


@pytest.mark.parametrize("column", ["path", "file", "filename", "file_name", "image_path"])
def test_group_from_csv_path_columns(layout, column):
    (layout.datasets / "g.csv").write_text(f"score,{column}\n0.5,c/3.jpg\n")
    assert names(group_images("g", layout)) == ["c/3.jpg"]


def test_group_from_csv_without_a_known_header(layout):
    (layout.datasets / "g.csv").write_text("a/1.jpg,x\nnotes,y\nb/2.JPG,z\n\n")
    assert names(group_images("g", layout)) == ["a/1.jpg", "b/2.JPG"]
    (layout.datasets / "g.csv").write_text("")
    assert group_images("g", layout) == []


def test_group_from_a_folder(layout):
    folder = layout.datasets / "birds"
    (folder / "sub").mkdir(parents=True)
    for name in ["b.jpg", "a.png", "sub/c.jpeg", "notes.txt"]:
        (folder / name).write_bytes(b"x")
    images = group_images("birds", layout)
    assert names(images) == ["a.png", "b.jpg", "sub/c.jpeg"]
    assert images[2].path == folder / "sub" / "c.jpeg"


def test_group_index_prefers_txt_then_csv_then_folder(layout):
    (layout.datasets / "g").mkdir()
    assert group_index("g", layout) == layout.datasets / "g"
    (layout.datasets / "g.csv").write_text("image\n")
    assert group_index("g", layout) == layout.datasets / "g.csv"
    (layout.datasets / "g.txt").write_text("")
    assert group_index("g", layout) == layout.datasets / "g.txt"


def test_unknown_group_names_where_it_looked(layout):
    with pytest.raises(StoreError, match="group 'nope' not found") as caught:
        group_images("nope", layout)
    message = str(caught.value)
    for looked in ("nope.txt", "nope.csv", str(layout.datasets / "nope")):
        assert looked in message
    assert "--data-root" in message


@pytest.mark.parametrize("name", ["a/b", "../up", "", ".", ".."])
def test_not_a_group_name(layout, name):
    (layout.datasets / "a").mkdir()
    (layout.datasets / "a" / "b.txt").write_text("1.jpg\n")
    with pytest.raises(StoreError, match="is not a group name"):
        group_index(name, layout)
