"""`seg-client segments badlist list` and `segments badlist remove`, as a user runs them."""

from __future__ import annotations

import json
import re

import pytest

from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli

PATHS = ["a/b/one.jpg", "a/b/two.jpg", "c/three.png", "x/one.png", "keep/five.jpg"]
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def badlist(*args: str, check: bool = True):
    return run_cli("seg-client", "segments", "badlist", *args, check=check)


def badlisted(db: str) -> set[str]:
    with SegmentStore.open(db) as store:
        return {i.path for i in store.images(include_badlisted=True) if i.badlisted}


@pytest.fixture
def db(tmp_path) -> str:
    """A store of five images; bad.txt (one, b/two.jpg, three, later.jpg) and extra.txt
    (a/b/one.jpg) pushed (as `segments badlist push FILE` does, without a process each)."""
    url = f"sqlite:///{tmp_path / 'segments.db'}"
    (tmp_path / "bad.txt").write_text("# pictures to leave out\none\nb/two.jpg\nthree\nlater.jpg\n")
    (tmp_path / "extra.txt").write_text("a/b/one.jpg\n")
    with SegmentStore.open(url) as store:
        for path in PATHS:
            segment = NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")
            store.save_segmentation(ImageFacts(path, "a" * 64, 10, 4, 3), "m", "v1", [segment])
        store.push_badlist(["one", "b/two.jpg", "three", "later.jpg"], source=str(tmp_path / "bad.txt"))
        store.push_badlist(["a/b/one.jpg"], source=str(tmp_path / "extra.txt"))
    return url


def test_pushed_names_are_listed_with_the_file_push_read(tmp_path):
    url = f"sqlite:///{tmp_path / 'segments.db'}"
    SegmentStore.open(url).close()
    (tmp_path / "bad.txt").write_text("one\n")
    badlist("push", str(tmp_path / "bad.txt"), "--db", url)
    [row] = json.loads(badlist("list", "--json", "--db", url).stdout)
    assert (row["name"], row["source"], row["images"]) == ("one", str(tmp_path / "bad.txt"), 0)


def test_list_shows_each_name_its_source_time_and_images_then_a_count(db, tmp_path):
    result = badlist("list", "--db", db)
    assert result.stderr == ""
    lines = [re.sub(STAMP, "<time>", line) for line in result.stdout.splitlines()]
    bad, extra = str(tmp_path / "bad.txt"), str(tmp_path / "extra.txt")
    w = len(extra)  # the longest source
    # columns as wide as their longest value (the time: "2026-01-02 03:04:05 UTC", 23 characters)
    assert lines == [
        f"name         {'source':<{w}}  added                    images",
        f"a/b/one.jpg  {extra:<{w}}  <time>       1",
        f"b/two.jpg    {bad:<{w}}  <time>       1",
        f"later.jpg    {bad:<{w}}  <time>       0",
        f"one          {bad:<{w}}  <time>       2",
        f"three        {bad:<{w}}  <time>       1",
        f"5 names on the badlist ({db}), matching 4 stored images",
    ]


def test_list_json_is_a_list_for_scripts(db, tmp_path):
    rows = json.loads(badlist("list", "--json", "--db", db).stdout)
    assert [(r["name"], r["source"], r["images"]) for r in rows] == [
        ("a/b/one.jpg", str(tmp_path / "extra.txt"), 1),
        ("b/two.jpg", str(tmp_path / "bad.txt"), 1),
        ("later.jpg", str(tmp_path / "bad.txt"), 0),
        ("one", str(tmp_path / "bad.txt"), 2),
        ("three", str(tmp_path / "bad.txt"), 1),
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", r["added_at"]) for r in rows)


def test_list_of_an_empty_badlist_says_how_to_add_names(tmp_path):
    url = f"sqlite:///{tmp_path / 'segments.db'}"
    SegmentStore.open(url).close()
    assert json.loads(badlist("list", "--json", "--db", url).stdout) == []
    result = badlist("list", "--db", url)
    assert result.stdout.splitlines() == [
        f"0 names on the badlist ({url}), matching 0 stored images; "
        "`seg-client segments badlist push FILE` adds names"
    ]


def test_list_of_a_missing_store_is_one_line(tmp_path):
    result = badlist("list", "--data-root", str(tmp_path), check=False)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("seg-client: error: no segment store at") and "--db URL" in line
    assert not (tmp_path / "DATA").exists()


def test_remove_unbadlists_the_images_no_other_name_matches(db, tmp_path):
    assert badlisted(db) == {"a/b/one.jpg", "x/one.png", "a/b/two.jpg", "c/three.png"}
    result = badlist("remove", "one", "three", "--db", db)
    bad = tmp_path / "bad.txt"
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        rf"removed one \(pushed from {re.escape(str(bad))} at {STAMP}; matched 2 stored images\)", lines[0]
    )
    assert re.fullmatch(
        rf"removed three \(pushed from {re.escape(str(bad))} at {STAMP}; matched 1 stored images\)", lines[1]
    )
    assert lines[2] == (
        f"2 names removed from the badlist ({db}): 2 stored images no longer badlisted; "
        "1 stay badlisted by other names"
    )
    assert result.stderr == ""
    assert badlisted(db) == {"a/b/one.jpg", "a/b/two.jpg"}  # a/b/one.jpg: extra.txt's name
    with SegmentStore.open(db) as store:
        assert [i.path for i in store.images()] == ["c/three.png", "keep/five.jpg", "x/one.png"]
    listed = badlist("list", "--db", db).stdout.splitlines()
    assert [line.split()[0] for line in listed[1:-1]] == ["a/b/one.jpg", "b/two.jpg", "later.jpg"]


def test_removing_a_name_not_on_the_badlist_is_one_line_and_exit_1(db):
    result = badlist("remove", "ghost", "--db", db, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "seg-client: 1 names are not on the badlist (`seg-client segments badlist list` shows it): ghost"
    ]
    assert result.stdout.splitlines() == [
        f"0 names removed from the badlist ({db}): 0 stored images no longer badlisted"
    ]
    assert "Traceback" not in result.stderr
    assert len(badlisted(db)) == 4


def test_an_image_path_instead_of_its_name_says_which_name_to_remove(db):
    result = badlist("remove", "x/one.png", "--db", db, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "seg-client: x/one.png is not on the badlist; stored images it names are badlisted by one "
        "(remove that name to include them again)"
    ]
    assert "x/one.png" in badlisted(db)


def test_some_names_unknown_some_removed_is_exit_0(db):
    result = badlist("remove", "ghost", "later.jpg", "--db", db)
    assert "removed later.jpg" in result.stdout and "1 names removed" in result.stdout
    assert "ghost" in result.stderr


def test_remove_file_undoes_a_push(db, tmp_path):
    result = badlist("remove", "--file", str(tmp_path / "bad.txt"), "--db", db)
    removed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("removed ")]
    assert removed == ["b/two.jpg", "later.jpg", "one", "three"]  # the comment line is no name
    assert result.stdout.splitlines()[-1].startswith("4 names removed from the badlist")
    assert "3 stored images no longer badlisted; 1 stay badlisted" in result.stdout
    assert badlisted(db) == {"a/b/one.jpg"}
    # names on the command line and in the file together; both already gone
    again = badlist("remove", "a/b/one.jpg", "--file", str(tmp_path / "extra.txt"), "--db", db)
    assert "1 names removed" in again.stdout and badlisted(db) == set()


def test_remove_without_names_says_what_to_give(db, tmp_path):
    result = badlist("remove", "--db", db, check=False)
    assert result.returncode == 2 and "name at least one badlist entry to remove" in result.stderr
    (tmp_path / "empty.txt").write_text("# nothing\n")
    empty = badlist("remove", "--file", str(tmp_path / "empty.txt"), "--db", db, check=False)
    assert empty.returncode == 2 and "or --file FILE" in empty.stderr
    assert len(badlisted(db)) == 4
