"""Fetching one image of a manifest, over HTTP or from a file, and checking it before it may land.

HTTP goes through one ``httpx.Client`` shared by the worker threads. Timeouts, dropped or
refused connections, truncated bodies, 5xx and 429 are retried with exponential backoff
(tenacity; a 429's or 503's Retry-After is honoured up to a few seconds); any other 4xx fails
the image at once. Bodies are read up to a size bound, and each attempt has a deadline besides
the per-read timeout (``clients.groups.http_deadline``: a server trickling a byte at a time is
cut off; the attempt counts as a timeout and is retried). :func:`check_picture` then makes sure
the bytes are an image of at most ``max_pixels`` (read from the header, before anything is
decoded) that decodes and has the manifest's checksum: only then may they be written.

Ctrl-C: :meth:`Fetcher.cancel` stops backoff waits at once and shuts the open sockets down, so
a request waiting on a slow server ends now instead of after its timeout.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from clients.groups.http_deadline import attempt_deadline, deadline_expired, track_sockets
from clients.http_retry import Backoff, Transient, retry_after_seconds, user_agent
from segcontract.errors import SegstackError
from segcontract.limits import DEFAULT_MAX_PIXELS
from segops.decode import ImageDecodeError, ImageTooLargeError, decode_image, unread_format
from segops.image_header import image_dimensions

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 4
DEFAULT_RETRY_WAIT_S = 0.5
DEFAULT_MAX_BYTES = 256 * 1024**2
MAX_RETRY_AFTER_S = 5.0  # a server asking for longer gets this much: a pull should not stall for it
MAX_BACKOFF_S = 8.0
MIN_DEADLINE_BASE_S = 10.0  # the default deadline: DEADLINE_FACTOR × max(--timeout, this)
DEADLINE_FACTOR = 4

_CONTENT_TYPES = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/png": ".png",
    "image/bmp": ".bmp",
    "image/x-bmp": ".bmp",
    "image/x-ms-bmp": ".bmp",
    "image/webp": ".webp",
    "image/tiff": ".tif",
}


class FetchError(SegstackError):
    """One image (or a manifest) cannot be had; the message is the reason, for a person."""


class Cancelled(Exception):
    """The run is being stopped (Ctrl-C): the work in hand is dropped."""


@dataclass(frozen=True)
class FetchSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S  # the longest wait to connect, or for the next bytes
    retries: int = DEFAULT_RETRIES  # attempts after the first
    retry_wait_s: float = DEFAULT_RETRY_WAIT_S  # the first backoff; it doubles each attempt
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS  # width × height; larger images are refused from the header
    deadline_s: float | None = None  # one attempt, start to last byte; None: default_deadline()

    @property
    def attempt_deadline_s(self) -> float:
        return self.deadline_s if self.deadline_s is not None else default_deadline(self.timeout_s)


def default_deadline(timeout_s: float) -> float:
    """The longest one attempt at a URL may take when --deadline is not given."""
    return DEADLINE_FACTOR * max(timeout_s, MIN_DEADLINE_BASE_S)


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class Picture:
    """Bytes that passed every check, and what meta records about them."""

    data: bytes
    sha256: str
    width: int
    height: int
    suffix: str  # with the dot: ".png"


def _content_length(response: httpx.Response) -> int | None:
    """The body's length as sent, where it can be compared with what was read (no compression)."""
    if response.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        return None
    try:
        length = int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None
    return length if length >= 0 else None


def _refuse_redirect_off_http(response: httpx.Response) -> None:
    """A redirect is followed to an http(s) URL only (never to file:// or another scheme)."""
    if response.has_redirect_location:
        try:
            scheme = response.request.url.join(response.headers["location"]).scheme.lower()
        except httpx.InvalidURL:
            return  # httpx refuses it itself
        if scheme not in ("http", "https"):
            raise FetchError(f"redirected to a {scheme}:// URL; only http(s) redirects are followed")


class Fetcher:
    """Gets the bytes of http(s) URLs and local files, for many threads at once."""

    def __init__(self, settings: FetchSettings | None = None, connections: int = 8):
        self.settings = settings or FetchSettings()
        self._cancelled = threading.Event()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.settings.timeout_s),
            follow_redirects=True,
            event_hooks={"response": [_refuse_redirect_off_http]},
            headers={"User-Agent": user_agent("groups-pull")},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._backends = track_sockets(self._client)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def cancel(self) -> None:
        """Stop now: no new attempt starts, backoff waits end, open connections are shut down."""
        self._cancelled.set()
        for backend in self._backends:
            backend.shutdown_all()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def fetch(self, location: str, is_http: bool) -> Fetched:
        """The bytes at an http(s) URL or a local path. Raises FetchError (with the reason) or
        Cancelled."""
        return self._get(location) if is_http else self._read_file(Path(location))

    def fetch_bytes(self, url: str) -> bytes:
        """The body of ``url`` (for a manifest): as :meth:`fetch`, without the image checks."""
        return self._get(url).data

    def _read_file(self, path: Path) -> Fetched:
        limit = self.settings.max_bytes
        try:
            if path.is_dir():
                raise FetchError(f"{path} is a folder, not an image file")
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise FetchError(f"no such file: {path}") from None
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise FetchError(f"over --max-bytes (the file has more than {limit} bytes)")
        return Fetched(data, None)

    def _get(self, url: str) -> Fetched:
        attempts = 0

        def attempt() -> Fetched:
            nonlocal attempts
            attempts += 1
            return self._get_once(url)

        backoff = Backoff(self.settings.retries, self.settings.retry_wait_s, MAX_BACKOFF_S, MAX_RETRY_AFTER_S)
        try:
            return backoff.run(attempt, self._sleep)
        except Transient as exc:
            tail = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
            raise FetchError(f"{exc}{tail}") from None

    def _sleep(self, seconds: float) -> None:
        if self._cancelled.wait(seconds):
            raise Cancelled()

    def _past_deadline(self) -> str:
        return f"not complete within {self.settings.attempt_deadline_s:g} s (--deadline)"

    def _get_once(self, url: str) -> Fetched:
        if self._cancelled.is_set():
            raise Cancelled()
        deadline = time.monotonic() + self.settings.attempt_deadline_s
        with attempt_deadline(deadline):
            return self._get_within_deadline(url, deadline)

    def _get_within_deadline(self, url: str, deadline: float) -> Fetched:
        limit = self.settings.max_bytes
        got, length = 0, None
        try:
            with self._client.stream("GET", url) as response:
                status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                if response.status_code == 429 or response.status_code >= 500:
                    raise Transient(status, retry_after_seconds(response.headers.get("retry-after")))
                if not 200 <= response.status_code < 300:
                    raise FetchError(status)
                length = _content_length(response)
                if length is not None and length > limit:
                    raise FetchError(f"over --max-bytes ({length} bytes, the limit is {limit})")
                chunks = []
                for chunk in response.iter_bytes():
                    if self._cancelled.is_set():
                        raise Cancelled()
                    got += len(chunk)
                    if time.monotonic() > deadline:  # where the streams are not ours to bound
                        raise Transient(self._past_deadline())
                    if got > limit:
                        raise FetchError(f"over --max-bytes (stopped reading at {limit} bytes)")
                    chunks.append(chunk)
                if length is not None and got < length:
                    raise Transient(f"truncated response (got {got} of {length} bytes)")
                return Fetched(b"".join(chunks), response.headers.get("content-type"))
        except httpx.TimeoutException as exc:
            if self._cancelled.is_set():
                raise Cancelled() from None
            if deadline_expired() or time.monotonic() >= deadline:
                raise Transient(self._past_deadline()) from None
            timeout = f"{self.settings.timeout_s:g} s (--timeout)"
            if isinstance(exc, httpx.ConnectTimeout):
                raise Transient(f"cannot connect within {timeout}") from None
            raise Transient(f"no answer within {timeout}") from None
        except httpx.UnsupportedProtocol as exc:
            raise FetchError(f"unsupported URL ({exc})") from None
        except httpx.TransportError as exc:
            if self._cancelled.is_set():
                raise Cancelled() from None
            if got or length is not None:
                of = f" of {length}" if length is not None else ""
                raise Transient(f"truncated response (the connection closed after {got}{of} bytes)") from None
            if isinstance(exc, httpx.ConnectError):
                raise Transient(f"cannot connect ({exc})") from None
            raise Transient(f"connection dropped ({exc or type(exc).__name__})") from None
        except httpx.TooManyRedirects:
            raise FetchError("too many redirects") from None
        except httpx.HTTPError as exc:  # e.g. a body that does not decompress
            raise FetchError(f"bad response ({type(exc).__name__}: {exc})") from None


def sniff_suffix(data: bytes) -> str | None:
    """The file suffix of the image format the bytes start with, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data.startswith(b"BM"):
        return ".bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return ".tif"
    return None


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"


def check_picture(
    data: bytes,
    expected_sha256: str | None,
    url_suffix: str | None,
    content_type: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Picture:
    """Accept ``data`` only if it is a decodable image of at most ``max_pixels`` with the expected
    checksum (when one is given). The size is read from the header before anything is decoded (a
    small file can claim gigapixels); a file whose header gives none (not JPEG, PNG, BMP, WebP
    or TIFF, or cut short) is refused undecoded, and so is a GIF (``segops.decode.unread_format``:
    no command reads one). Its suffix: the URL's, else the format's, else
    the Content-Type's, else ``.jpg``."""
    if not data:
        raise FetchError("empty (0 bytes)")
    if (reason := unread_format(data[:16])) is not None:
        raise FetchError(reason)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise FetchError(
            f"sha256 differs from the manifest's (got {digest[:16]}…, expected {expected_sha256[:16]}…)"
        )
    size = image_dimensions(data)
    if size is None:  # its size and kind, never its first bytes: they may be a secret
        from segops.decode import not_an_image

        raise FetchError(f"{not_an_image(len(data), data[:512])}: its header gives no size")
    if size[0] * size[1] > max_pixels:
        raise FetchError(
            f"over --max-pixels (the image is {size[0]}x{size[1]}, {_pixels(size[0] * size[1])}; "
            f"the limit is {_pixels(max_pixels)})"
        )
    try:
        image = decode_image(data, max_pixels=max_pixels)
    except ImageTooLargeError:  # OpenCV's own limit, where it is set lower
        raise FetchError(f"over --max-pixels (the limit is {_pixels(max_pixels)})") from None
    except ImageDecodeError as exc:
        raise FetchError(str(exc)) from None
    mime = (content_type or "").split(";")[0].strip().lower()
    suffix = url_suffix or sniff_suffix(data) or _CONTENT_TYPES.get(mime) or ".jpg"
    height, width = image.shape[:2]
    return Picture(data, digest, int(width), int(height), suffix)
