"""The manifest of ``groups pull``: formats, fields, URL resolution and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.groups.manifest import (
    ManifestError,
    parse_manifest,
    read_manifest,
    redact_url,
    unsafe_name_problem,
)

SHA = "ab" * 32


def _json(tmp_path: Path, document, name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _never(url: str) -> bytes:
    raise AssertionError(f"fetched {url}")


def _read(path: Path):
    return read_manifest(str(path), _never)


def test_json_list_fields_ids_and_metadata(tmp_path):
    path = _json(
        tmp_path,
        [
            {"url": "https://example.org/pics/cat%201.JPG?x=1", "label": "cat", "source": "zoo", "n": 3},
            {"url": "http://example.org/b", "id": "second", "sha256": f"sha256:{SHA.upper()}", "label": 7},
        ],
    )
    rows = _read(path).rows
    assert [r.id for r in rows] == ["cat 1", "second"]
    assert [r.where for r in rows] == ["[0]", "[1]"]
    assert rows[0].fields == {
        "url": "https://example.org/pics/cat%201.JPG?x=1",
        "label": "cat",
        "source": "zoo",
        "n": 3,
    }
    assert rows[0].is_http and rows[0].url_suffix == ".jpg" and rows[0].sha256 is None
    assert rows[1].sha256 == SHA and rows[1].label == "7" and rows[1].url_suffix is None


def test_images_object_and_csv_with_bom_and_any_case_header(tmp_path):
    wrapped = _read(_json(tmp_path, {"images": [{"url": "a.png"}, {"url": "b.png"}]})).rows
    assert [r.where for r in wrapped] == ["images[0]", "images[1]"]
    csv_path = tmp_path / "m.csv"
    csv_path.write_bytes(
        '\ufeffURL, Label ,id,sha256,camera\nimgs/a.png,cat,,,left\n\n"imgs/b,c.jpg",,bee,,right\n'.encode()
    )
    rows = _read(csv_path).rows
    assert [(r.id, r.label, r.sha256, r.where) for r in rows] == [
        ("a", "cat", None, "line 2"),
        ("bee", None, None, "line 4"),
    ]
    assert rows[0].fields == {"url": "imgs/a.png", "label": "cat", "id": "", "sha256": "", "camera": "left"}
    assert rows[1].location == str(tmp_path / "imgs" / "b,c.jpg")


def test_format_is_sniffed_without_a_known_suffix(tmp_path):
    (tmp_path / "list").write_text('[{"url": "a.png"}]')
    (tmp_path / "table").write_text("url\na.png\n")
    assert _read(tmp_path / "list").rows[0].id == _read(tmp_path / "table").rows[0].id == "a"


def test_relative_paths_file_urls_and_urls_relative_to_a_manifest_url(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    other = tmp_path / "elsewhere" / "z.png"
    path = _json(
        folder,
        [{"url": "a.png"}, {"url": "../up/b.jpg"}, {"url": other.as_uri()}, {"url": str(other), "id": "abs"}],
    )
    rows = _read(path).rows
    assert [r.location for r in rows] == [
        str(folder / "a.png"),
        str(tmp_path / "up" / "b.jpg"),
        str(other),
        str(other),
    ]
    assert not any(r.is_http for r in rows)
    assert rows[0].resolved_url == (folder / "a.png").as_uri()

    web = parse_manifest(
        b'[{"url": "pics/a.png"}, {"url": "/root.png"}, {"url": "https://other.org/c.png"}]',
        "https://example.org/lists/m.json",
        base="https://example.org/lists/m.json",
    ).rows
    assert [r.location for r in web] == [
        "https://example.org/lists/pics/a.png",
        "https://example.org/root.png",
        "https://other.org/c.png",
    ]
    assert all(r.is_http for r in web)


def test_relative_manifest_path_resolves_against_its_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    _json(tmp_path / "sub", [{"url": "a.png"}])
    monkeypatch.chdir(tmp_path)
    assert read_manifest("sub/manifest.json", _never).rows[0].location == str(tmp_path / "sub" / "a.png")


def test_a_manifest_url_is_read_with_the_fetcher(tmp_path):
    asked = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        return b"url,label\nx/y.png,1\n"

    manifest = read_manifest("http://127.0.0.1:9/groups/m.csv", fetch)
    assert asked == ["http://127.0.0.1:9/groups/m.csv"]
    assert manifest.rows[0].location == "http://127.0.0.1:9/groups/x/y.png"

    def broken(url: str) -> bytes:
        raise OSError("HTTP 404 Not Found")

    with pytest.raises(ManifestError, match=r"^http://h/m.json: cannot fetch the manifest: HTTP 404"):
        read_manifest("http://h/m.json", broken)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"[{", "not valid JSON"),
        (b"[]", "lists no images"),
        (b'{"files": []}', 'without an "images" list'),
        (b'"a.png"', "not a list of images"),
        (b'[{"url": "a.png"}, "b.png"]', r"\[1\] is a str, not an object"),
        (b'[{"id": "a"}]', r'\[0\]: no "url"'),
        (b'[{"url": 3}]', r"\[0\]: url is a int"),
        (b"\xff\xfe[]", "not UTF-8"),
    ],
)
def test_a_corrupt_json_manifest_is_one_line_naming_it(tmp_path, content, says):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=says) as caught:
        _read(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("id,label\na,cat\n", r"no url column \(the header row has: id, label\)"),
        ("url\n", "lists no images"),
        ("url,id,ID\na.png,a,b\n", "names a column twice"),
        ("url,id\na.png,a,extra\n", "line 2 has 3 cells, the header 2"),
    ],
)
def test_a_corrupt_csv_manifest_is_one_line_naming_it(tmp_path, content, says):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=says) as caught:
        _read(path)
    assert str(caught.value).startswith(f"{path}: ")


UNSAFE = ["a/b", "..", ".hidden", "a\\b", "tab\there", "nul\x00", "del\x7f", "rtl\u202eb", "x" * 201]


@pytest.mark.parametrize("bad", UNSAFE)
def test_unsafe_ids_are_refused_naming_the_row(tmp_path, bad):
    path = _json(tmp_path, [{"url": "ok.png"}, {"url": "x.png", "id": bad}])
    with pytest.raises(ManifestError) as caught:
        _read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: [1]: id ") and "plain file name" in message
    assert "\n" not in message


def test_an_id_from_a_url_without_a_file_name_is_refused(tmp_path):
    path = _json(tmp_path, [{"url": "https://example.org/"}])
    with pytest.raises(ManifestError, match=r"\[0\]: url 'https://example.org/' gives no usable id"):
        _read(path)


def test_duplicate_ids_name_both_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("url,id\na/cat.png,\nb.png,x\nc/cat.jpg,\n")
    with pytest.raises(ManifestError, match=r"line 2 and line 4 both have id 'cat'"):
        _read(path)


@pytest.mark.parametrize("url", ["s3://bucket/a.png", "gs://b/a.png", "ftp://h/a.png", "file://other/a.png"])
def test_other_schemes_are_one_clear_error(tmp_path, url):
    path = _json(tmp_path, [{"url": url}])
    with pytest.raises(ManifestError) as caught:
        _read(path)
    assert str(caught.value).startswith(f"{path}: [0]: url {url!r}")


def test_bad_sha256_and_several_problems_are_counted(tmp_path):
    path = _json(tmp_path, [{"url": "a.png", "sha256": "abc"}, {"url": "s3://b/c.png"}, {"url": ""}])
    says = r"\[0\]: sha256 'abc' is not 64 hex digits \(and 2 more problems\)"
    with pytest.raises(ManifestError, match=says):
        _read(path)


def test_manifest_location_problems(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        _read(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="a folder, not a manifest file"):
        _read(tmp_path)
    with pytest.raises(ManifestError, match=r"s3:// is not read"):
        read_manifest("s3://bucket/m.json", _never)
    path = _json(tmp_path, [{"url": "a.png"}])
    assert read_manifest(path.as_uri(), _never).rows[0].location == str(tmp_path / "a.png")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("cat-01", True), ("Ünïcode name", True), ("a.b", True), ("", False), (".", False), ("a/..", False)],
)
def test_unsafe_name_problem(name, ok):
    assert (unsafe_name_problem(name) is None) == ok


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw5ecret@host/x.jpg?token=abc", "http://***@host/x.jpg?token=***"),
        (
            "https://tok3n@host:8443/a/b.png?v=2&sig=zz&bare",
            "https://***@host:8443/a/b.png?v=***&sig=***&***",
        ),
        ("https://host/a.png#frag", "https://host/a.png"),
        ("http://u:p@[::1]:80/a.png", "http://***@[::1]:80/a.png"),
        ("s3://key:secret@bucket/a.png?X-Amz-Signature=s1g", "s3://***@bucket/a.png?X-Amz-Signature=***"),
        ("https://host/plain.png", "https://host/plain.png"),
        ("imgs/what?.png", "imgs/what?.png"),  # a path, not a URL: as it is
        ("C:\\pics\\a?.png", "C:\\pics\\a?.png"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_a_relative_url_of_a_url_manifest_is_redacted_too():
    assert redact_url("pics/a.png?token=abc", is_url=True) == "pics/a.png?token=***"


def test_urls_in_manifest_messages_and_rows_are_redacted(tmp_path):
    secret = "pw5ecret"

    def broken(url: str) -> bytes:
        assert secret in url  # the request itself has the URL as given
        raise OSError("HTTP 404 Not Found")

    with pytest.raises(ManifestError) as caught:
        read_manifest(f"http://user:{secret}@h/m.json?token={secret}", broken)
    assert str(caught.value) == "http://***@h/m.json?token=***: cannot fetch the manifest: HTTP 404 Not Found"

    base = f"http://user:{secret}@h/lists/m.json?token={secret}"
    for rows in (
        [{"url": f"s3://key:{secret}@bucket/a.png"}],
        [{"url": f"https://u:{secret}@h/?token={secret}"}],
    ):
        with pytest.raises(ManifestError) as caught:
            parse_manifest(json.dumps(rows).encode(), redact_url(base), base=base)
        assert secret not in str(caught.value) and "***@" in str(caught.value)

    (row,) = parse_manifest(
        json.dumps([{"url": f"https://me:{secret}@h/a.png?token={secret}"}]).encode(),
        "m.json",
        base=str(tmp_path),
    ).rows
    assert row.location == f"https://me:{secret}@h/a.png?token={secret}"  # what is requested
    assert row.resolved_url == f"https://h/a.png?token={secret}"  # the meta's: the query says which image
    assert row.shown_url == "https://***@h/a.png?token=***"  # messages and failures.json
    local = parse_manifest(b"url\nimgs/what?.png\n", "m.csv", base=str(tmp_path)).rows[0]
    assert local.shown_url == "imgs/what?.png"
