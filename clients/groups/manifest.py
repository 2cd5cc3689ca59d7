"""The manifest of ``seg-client groups pull``: which images a group holds and where each comes from.

A JSON list of objects (or ``{"images": [...]}``), or a CSV with a header row. ``url`` is required
(http(s)://, file:// or a path; a relative one is relative to the manifest: its folder, or its URL);
``id``, ``sha256`` and ``label`` are optional; every other field is kept as metadata. The whole
manifest is checked before anything is fetched or written, so a bad one costs one line and no files.

A manifest fetched over http(s) is someone else's text: its rows that name a local file (a path
or file://) are not read unless the user allows it (``groups pull --allow-local-files``), or any
picture this machine can read could be copied into DATA/ and posted on with the group's metadata.
A path relative to such a manifest is relative to its URL, so it stays remote.

URLs carry secrets (``https://user:password@host/...``, ``?token=...``): what is shown or written
for a person names them through :func:`redact_url` (no user name or password, no query values);
only the request itself uses the URL as given.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

from segcontract.errors import SegstackError
from segcontract.image_files import IMAGE_SUFFIXES

MAX_ID_LENGTH = 200  # the id becomes a file name (plus a suffix): stay under the 255-byte limit
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_KNOWN = ("url", "id", "sha256", "label")


class ManifestError(SegstackError, ValueError):
    """The manifest cannot be used; the message starts with the manifest's name and says what."""


@dataclass(frozen=True)
class ManifestRow:
    where: str  # how messages name the row: "[3]" for JSON, "line 5" for CSV
    id: str
    url: str  # as the manifest writes it
    location: str  # an http(s) URL, or an absolute local path
    is_http: bool
    sha256: str | None  # lower-case hex
    label: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # every field of the row, as given

    @property
    def url_suffix(self) -> str | None:
        """The image suffix of the URL's path (``.png``...), or None when it has none we read."""
        path = urlsplit(self.location).path if self.is_http else self.location
        suffix = PurePosixPath(unquote(path)).suffix.lower() if self.is_http else Path(path).suffix.lower()
        return suffix if suffix in IMAGE_SUFFIXES else None

    @property
    def resolved_url(self) -> str:
        """The URL as recorded in the image's meta: local paths as absolute file:// URIs, http(s)
        URLs without their user name and password (the query is kept: it often says which image)."""
        return strip_userinfo(self.location) if self.is_http else Path(self.location).as_uri()

    @property
    def shown_url(self) -> str:
        """The URL as messages and failures.json show it: see :func:`redact_url`. A URL relative
        to a manifest's URL is shown resolved; a local path as the manifest writes it."""
        return redact_url(self.location) if self.is_http else self.url


@dataclass(frozen=True)
class Manifest:
    name: str  # the path or URL as the user gave it
    rows: tuple[ManifestRow, ...]
    remote: bool = False  # fetched over http(s): its rows may not name this machine's files

    def local_rows(self) -> list[ManifestRow]:
        """The rows that name a local file (a path or file://), in manifest order."""
        return [row for row in self.rows if not row.is_http]


def strip_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` of its host part, if it has one."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact_url(url: str, *, is_url: bool = False) -> str:
    """``url`` as it may be shown or written down: the user name and password become ``***@``,
    each query value ``***`` (``?token=***``; a bare item is ``***`` too), the fragment goes.
    A path (no scheme of two letters or more) is returned as it is, unless ``is_url`` (e.g. a
    URL relative to a manifest's URL)."""
    parts = urlsplit(url)
    if len(parts.scheme) < 2 and not is_url:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{item.partition('=')[0]}=***" if "=" in item else "***" for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def unsafe_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name in every folder of the layout, or None when it can."""
    if not name:
        return "is empty"
    if name != name.strip():
        return "starts or ends with white space"
    if name.startswith("."):
        return "starts with a dot"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "holds a control character"
    if len(name.encode()) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} bytes"
    return None


def read_manifest(location: str, fetch_url: Callable[[str], bytes]) -> Manifest:
    """Read and check the manifest at ``location`` (a path, file:// or an http(s) URL, the latter
    read with ``fetch_url``). Raises ManifestError, naming the manifest, on any problem."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    name = redact_url(location)  # how messages and Manifest.name call it
    if scheme in ("http", "https"):
        try:
            data = fetch_url(location)
        except ManifestError:
            raise
        except Exception as exc:  # the fetcher's one-line reason
            raise ManifestError(f"{name}: cannot fetch the manifest: {exc}") from None
        return parse_manifest(data, name, base=location)
    if scheme == "file":
        path = Path(url2pathname(parts.path))
    elif len(scheme) > 1:  # one letter: a Windows drive
        raise ManifestError(
            f"{name}: {scheme}:// is not read; give an http(s):// URL, a file:// URL or a path"
        )
    else:
        path = Path(location)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{name}: a folder, not a manifest file (.json or .csv)") from None
    except OSError as exc:
        raise ManifestError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    return parse_manifest(data, name, base=str(path.resolve().parent))


def parse_manifest(data: bytes, name: str, base: str) -> Manifest:
    """Parse manifest bytes. ``base`` resolves relative URLs: a folder, or the manifest's own URL.
    ``name`` names the manifest in messages: pass it through :func:`redact_url`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise ManifestError(f"{name}: empty; a manifest is a JSON list of objects or a CSV with a header")
    suffix = PurePosixPath(urlsplit(name).path).suffix.lower()
    is_json = suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{"))
    raw = _json_rows(text, name) if is_json else _csv_rows(text, name)
    if not raw:
        raise ManifestError(f"{name}: lists no images")
    rows: list[ManifestRow] = []
    problems: list[str] = []
    for where, fields in raw:
        try:
            rows.append(_row(where, fields, base))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ManifestError(f"{name}: {problems[0]}{more}")
    _check_unique(rows, name)
    return Manifest(name, tuple(rows), remote=urlsplit(base).scheme.lower() in ("http", "https"))


def _json_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{name}: not valid JSON: {exc}") from None
    prefix = ""
    if isinstance(document, dict):
        if not isinstance(document.get("images"), list):
            raise ManifestError(f'{name}: a JSON object without an "images" list; expected a list of images')
        document, prefix = document["images"], "images"
    if not isinstance(document, list):
        raise ManifestError(f"{name}: a JSON {type(document).__name__}, not a list of images")
    rows = []
    for i, item in enumerate(document):
        if not isinstance(item, dict):
            raise ManifestError(
                f'{name}: {prefix}[{i}] is a {type(item).__name__}, not an object with a "url"'
            )
        rows.append((f"{prefix}[{i}]", item))
    return rows


def _csv_rows(text: str, name: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        header = [h.strip() for h in header]
        known = {h.lower(): i for i, h in enumerate(header) if h.lower() in _KNOWN}
        if "url" not in known:
            raise ManifestError(f"{name}: no url column (the header row has: {', '.join(header)})")
        names = [h.lower() if h.lower() in _KNOWN else h for h in header]
        if len(set(n for n in names if n)) != len([n for n in names if n]):
            raise ManifestError(f"{name}: the header row names a column twice: {', '.join(header)}")
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            where = f"line {reader.line_num}"
            if len(cells) > len(names) and any(c.strip() for c in cells[len(names) :]):
                raise ManifestError(f"{name}: {where} has {len(cells)} cells, the header {len(names)}")
            rows.append((where, {n: c for n, c in zip(names, cells) if n}))
    except StopIteration:
        raise ManifestError(f"{name}: empty") from None
    except csv.Error as exc:
        raise ManifestError(f"{name}: not a readable CSV (line {reader.line_num}: {exc})") from None
    return rows


def _optional(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{key} is a {type(value).__name__}, not text")
    return str(value).strip()


def _row(where: str, fields: dict[str, Any], base: str) -> ManifestRow:
    url = fields.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError('no "url"' if url is None or url == "" else f"url is a {type(url).__name__}")
    url = url.strip()
    shown = redact_url(url, is_url=urlsplit(base).scheme.lower() in ("http", "https"))
    location, is_http = resolve_url(url, base)
    image_id = _optional(fields, "id")
    if image_id is None:
        path = unquote(urlsplit(location).path) if is_http else location
        image_id = PurePosixPath(path).stem if is_http else Path(path).stem
        if unsafe_name_problem(image_id):
            raise ValueError(f"url {shown!r} gives no usable id ({image_id!r}); give the row an id")
    elif problem := unsafe_name_problem(image_id):
        raise ValueError(f"id {image_id!r} {problem}; an id must be a plain file name")
    sha256 = _optional(fields, "sha256")
    if sha256 is not None:
        match = _SHA256.match(sha256)
        if match is None:
            raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
        sha256 = match[1].lower()
    return ManifestRow(where, image_id, url, location, is_http, sha256, _optional(fields, "label"), fields)


def resolve_url(url: str, base: str) -> tuple[str, bool]:
    """``url`` made absolute against ``base`` (a folder, or a manifest's URL): (location, is_http).
    Raises ValueError for a scheme groups pull does not read (naming the URL redacted)."""
    scheme = urlsplit(url).scheme.lower()
    base_is_http = urlsplit(base).scheme.lower() in ("http", "https")
    shown = redact_url(url)
    if scheme in ("http", "https"):
        if not urlsplit(url).netloc:
            raise ValueError(f"url {shown!r} names no host")
        return url, True
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"url {shown!r}: file:// URLs of another host are not read")
        return str(Path(url2pathname(parts.path)).resolve()), False
    if len(scheme) > 1:  # one letter is a Windows drive: a path
        raise ValueError(
            f"url {shown!r}: {scheme}:// is not read; groups pull reads http(s)://, file:// and paths "
            "(copy the images somewhere it can read, or serve them over HTTP)"
        )
    if base_is_http:
        return urljoin(base, url), True
    return str((Path(base) / Path(url).expanduser()).resolve()), False


def _check_unique(rows: list[ManifestRow], name: str) -> None:
    first: dict[str, ManifestRow] = {}
    for row in rows:
        if row.id in first:
            raise ManifestError(
                f"{name}: {first[row.id].where} and {row.where} both have id {row.id!r}; "
                "give them different ids"
            )
        first[row.id] = row
