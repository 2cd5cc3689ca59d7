"""``seg-client meta post``: a group's ret_meta.json to the metadata service, in chunks, each sent
until the service acknowledges it, no image acknowledged twice.

Each image has a key: the sha256 of its entry with the models' facts. The ledger beside
ret_meta.json (``ret_meta.posted.json``) lists, per endpoint, the image keys the service has
acknowledged; a run sends only the other images, in ret_meta's order, ``chunk_size`` at a time.
So a re-run sends what is left, and a rebuilt ret_meta sends only the images whose entry changed
(removing or adding one image does not shift the others into new chunks).

A chunk is ``{"format", "group", "models", "images": [...]}`` as compact JSON, gzip-compressed,
POSTed with ``Authorization: Bearer <token>`` (from the environment variable the configuration
names; never printed) and ``Idempotency-Key: <sha256 of the chunk's JSON>``. The ledger is
rewritten atomically after each acknowledgement, so a killed run loses at most the
acknowledgement of the chunk in flight, and its re-run sends that chunk again with the same key
(the same images in the same order), which a service that keeps the keys it has seen applies once.

A chunk is acknowledged by a 2xx answer whose body is the service's acknowledgement
(``segcontract/schemas/ret_meta_ack.schema.json``): JSON naming the chunk's Idempotency-Key and
the ``image`` of every entry it stored, e.g. ``{"idempotency_key": "<the key>", "stored":
["a/p0.png", "p1.png"]}`` (any order; other members ignored; the Content-Type is not checked).
A key the service has seen already is answered the same way. Any other 2xx (an HTML page from a
proxy or captive portal, another chunk's key, images missing from ``stored``) is not an
acknowledgement: a failed attempt, retried like a 5xx, and nothing goes into the ledger for it.

Connection errors, timeouts, 408, 409, 429, 5xx and 2xx answers that are not an acknowledgement
are retried with exponential backoff (a Retry-After is honoured, or the group stops when it asks
for longer than a run should wait); another 4xx ends the group with the service's message (the
command goes on with the other groups and exits non-zero). Every attempt has a deadline, so a
service that trickles its answer cannot hold a run.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import os
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from jsonschema import Draft202012Validator

from clients.http_retry import Backoff, Transient, retry_after_seconds, user_agent
from clients.meta.config_file import ServiceSettings
from clients.triton.client import ClientError
from segcontract import schemas
from segcontract.files import write_json_atomic

LEDGER_FILE = "ret_meta.posted.json"
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0  # a service asking for longer: stop, a re-run sends the rest
FIRST_BACKOFF_S = 0.5
MESSAGE_CHARS = 300
MAX_ANSWER_BYTES = 1 << 23  # an acknowledgement of --chunk-size 10000 images with long paths fits
RETRIED_4XX = {408, 409, 429}  # timeout, a key still being processed, slow down
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # what an HTTP header carries unchanged
_BEARER = re.compile(r"Bearer\s+\S+")


@dataclass(frozen=True)
class Chunk:
    index: int
    image_keys: tuple[str, ...]
    body: bytes  # the compact JSON, before gzip
    key: str  # its sha256: the Idempotency-Key
    names: tuple[str, ...] = ()  # each image's "image": what the acknowledgement's stored lists

    @property
    def images(self) -> int:
        return len(self.image_keys)


@dataclass
class PostSummary:
    group: str
    images: int = 0
    already: int = 0  # images acknowledged by an earlier run
    chunks: int = 0  # chunks to send
    sent: int = 0  # chunks acknowledged by this run
    attempts: int = 0
    bytes_sent: int = 0  # compressed
    ledger: Path | None = None


def _compact(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_keys(document: dict) -> list[str]:
    """Per image, the sha256 of its entry and the models' facts: what the service has of it."""
    models = _compact(document.get("models", []))
    return [
        hashlib.sha256(models + b"\n" + _compact(image)).hexdigest() for image in document.get("images", [])
    ]


def make_chunks(document: dict, chunk_size: int, acknowledged: set[str] = frozenset()) -> list[Chunk]:
    """The images not yet acknowledged, ``chunk_size`` at a time, in ret_meta's order."""
    head = {
        "format": document.get("format"),
        "group": document.get("group"),
        "models": document.get("models", []),
    }
    pending = [
        (key, image)
        for key, image in zip(image_keys(document), document.get("images", []))
        if key not in acknowledged
    ]
    chunks = []
    for index, start in enumerate(range(0, len(pending), chunk_size)):
        part = pending[start : start + chunk_size]
        body = _compact({**head, "images": [image for _, image in part]})
        chunks.append(
            Chunk(
                index,
                tuple(key for key, _ in part),
                body,
                hashlib.sha256(body).hexdigest(),
                tuple(image.get("image") for _, image in part),
            )
        )
    return chunks


@cache
def _acknowledgement_schema() -> Draft202012Validator:
    return Draft202012Validator(schemas.load("ret_meta_ack"))


def acknowledgement_problem(chunk: Chunk, text: str) -> str | None:
    """Why ``text``, the body of a 2xx answer to ``chunk``, is not the service's acknowledgement
    of it; None when it is. A proxy or captive portal answers 200 too: only this body says the
    service has the chunk's images."""
    try:
        answer = json.loads(text)
    except ValueError:
        return "not JSON"
    errors = sorted(_acknowledgement_schema().iter_errors(answer), key=str)
    if errors:
        return f"not an acknowledgement ({errors[0].message})"
    if answer["idempotency_key"] != chunk.key:
        return (
            f"acknowledges Idempotency-Key {answer['idempotency_key'][:12]}..., "
            f"not this chunk's {chunk.key[:12]}..."
        )
    stored = set(answer["stored"])
    missing = [name for name in chunk.names if name not in stored]
    if missing:
        return f"stored lacks {len(missing)} of the chunk's {len(chunk.names)} images (first: {missing[0]!r})"
    extra = stored - set(chunk.names)
    if extra:
        return f"stored names {len(extra)} images the chunk does not hold"
    return None


def load_ledger(path: Path) -> dict[str, dict[str, dict]]:
    """Endpoint → acknowledged image key → when and in which chunk; {} where there is none yet."""
    try:
        ledger = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ClientError(
            f"{path}: unreadable ledger ({exc}); move it away to send every image again"
        ) from None
    return ledger.get("acknowledged", {}) if isinstance(ledger, dict) else {}


def check_endpoint(endpoint: str) -> None:
    """https anywhere; plain http only to this machine (the token would travel in clear); no
    user name or password in the URL (it would be printed and kept in the ledger)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"endpoint {endpoint!r}: expected an http(s):// URL")
    if parts.username or parts.password:
        raise ClientError("endpoint: no user name or password in the URL; the token authenticates")
    if parts.scheme == "https":
        return
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ClientError(f"endpoint {endpoint}: plain http would send the token in clear; use https")


def check_token(token: str, settings: ServiceSettings) -> None:
    """A token a header carries as it is; refused in one line that does not show it."""
    if not _TOKEN.match(token):
        raise ClientError(
            f"${settings.token_env}: the token holds spaces, line breaks or non-ASCII characters "
            "(a header cannot carry them); set it again"
        )


def _tls(settings: ServiceSettings) -> ssl.SSLContext:
    if settings.ca_bundle is None:
        return ssl.create_default_context()
    if not Path(settings.ca_bundle).is_file():
        raise ClientError(f"ca_bundle {settings.ca_bundle}: no such file")
    try:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    except ssl.SSLError as exc:
        raise ClientError(
            f"ca_bundle {settings.ca_bundle}: not a PEM CA bundle ({exc.reason or exc})"
        ) from None


class Poster:
    """One endpoint and token; TLS checked (``ca_bundle`` or the system's), no proxy from the
    environment (a plain-http loopback request must not leave the machine)."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        settings: ServiceSettings,
        sleep: Callable[[float], None] = time.sleep,
    ):
        check_endpoint(endpoint)
        check_token(token, settings)
        self.endpoint = endpoint
        self.token = token
        self.settings = settings
        self.sleep = sleep
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            verify=_tls(settings),
            headers={"User-Agent": user_agent("meta-post")},
            follow_redirects=False,
            trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def _clean(self, text: object) -> str:
        text = _BEARER.sub("Bearer ***", " ".join(str(text).split()))
        return text.replace(self.token, "***")[:MESSAGE_CHARS]

    def send(self, chunk: Chunk, on_attempt: Callable[[], None] = lambda: None) -> int:
        """POST ``chunk`` until it is acknowledged (a 2xx with the acknowledgement of this chunk);
        returns its compressed size."""
        payload = gzip.compress(chunk.body, mtime=0)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": chunk.key,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }

        def attempt() -> int:
            on_attempt()
            status, text, retry_after = self._post_within_deadline(payload, headers)
            if status in RETRIED_4XX or status >= 500:
                if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                    raise ClientError(
                        f"{self.endpoint} asks to wait {retry_after:.0f} s (HTTP {status}); "
                        "acknowledged chunks are in the ledger: run meta post again later"
                    )
                raise Transient(f"HTTP {status}: {self._clean(text)}", retry_after)
            if not 200 <= status < 300:
                hint = "; try a smaller --chunk-size" if status == 413 else ""
                raise ClientError(
                    f"{self.endpoint} refused chunk {chunk.index + 1} (HTTP {status}): "
                    f"{self._clean(text) or 'no message'}{hint}"
                )
            problem = acknowledgement_problem(chunk, text)
            if problem is not None:
                shown = f": {self._clean(text) or 'empty body'}" if problem == "not JSON" else ""
                raise Transient(f"HTTP {status} is no acknowledgement: {self._clean(problem)}{shown}")
            return len(payload)

        backoff = Backoff(self.settings.retries, FIRST_BACKOFF_S, MAX_BACKOFF_S, MAX_RETRY_AFTER_S)
        try:
            return backoff.run(attempt, self.sleep)
        except Transient as exc:
            raise ClientError(
                f"{self.endpoint}: chunk {chunk.index + 1} not acknowledged after "
                f"{self.settings.retries + 1} attempts (last: {exc}); a re-run sends what is left"
            ) from None

    def _post_within_deadline(self, payload: bytes, headers: dict) -> tuple[int, str, float | None]:
        """(status, the answer's text, Retry-After seconds) of one POST that ends within 2 ×
        the timeout however slowly the service answers; Transient when it fails or runs out."""
        deadline = time.monotonic() + 2 * self.settings.timeout_s
        try:
            with self.client.stream("POST", self.endpoint, content=payload, headers=headers) as response:
                body = b""
                for piece in response.iter_bytes():
                    body += piece
                    if time.monotonic() > deadline:
                        raise Transient(f"no complete answer within {2 * self.settings.timeout_s:g} s")
                    if len(body) > MAX_ANSWER_BYTES:
                        break
                text = body[:MAX_ANSWER_BYTES].decode("utf-8", "replace")
                return response.status_code, text, retry_after_seconds(response.headers.get("retry-after"))
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ClientError(
                    f"{self.endpoint}: its TLS certificate is not trusted ({self._clean(exc)}); "
                    "give the CA with --ca-bundle"
                ) from None
            raise Transient(f"cannot connect: {self._clean(exc) or 'no detail'}") from None
        except (httpx.TransportError, httpx.StreamError) as exc:  # dropped, timed out
            raise Transient(f"{type(exc).__name__}: {self._clean(exc) or 'no detail'}") from None
        except httpx.LocalProtocolError as exc:  # a header it cannot send: never the token (checked)
            raise ClientError(f"{self.endpoint}: cannot send the request ({self._clean(exc)})") from None


def read_ret_meta(path: Path, group: str) -> dict:
    """``path`` checked against the ret_meta schema, and that it is ``group``'s."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(
            f"{path}: no such file; run `seg-client meta build --groups {group!r}` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ClientError(f"{path}: not a readable ret_meta.json ({exc})") from None
    errors = sorted(Draft202012Validator(schemas.load("ret_meta")).iter_errors(document), key=str)
    if errors:
        raise ClientError(
            f"{path}: not a ret_meta.json meta build wrote ({errors[0].message[:200]}); build it again"
        )
    if document["group"] != group:
        raise ClientError(f"{path}: holds group {document['group']!r}, not {group!r}")
    return document


def post_group(
    ret_meta: Path,
    group: str,
    endpoint: str,
    token: str | None,
    settings: ServiceSettings,
    *,
    dry_run: bool = False,
    on_start: Callable[[int], None] = lambda chunks: None,
    on_chunk: Callable[[int], None] = lambda n: None,
) -> PostSummary:
    """Send the images of ``ret_meta`` the ledger does not list as acknowledged by ``endpoint``."""
    check_endpoint(endpoint)
    document = read_ret_meta(ret_meta, group)
    ledger_path = ret_meta.with_name(LEDGER_FILE)
    ledger = load_ledger(ledger_path)
    acknowledged = ledger.setdefault(endpoint, {})
    keys = image_keys(document)
    chunks = make_chunks(document, settings.chunk_size, set(acknowledged))
    summary = PostSummary(
        group, len(keys), sum(k in acknowledged for k in keys), len(chunks), ledger=ledger_path
    )
    if dry_run or not chunks:
        return summary
    if not token:
        raise ClientError(f"${settings.token_env} is not set: export the metadata service's token and retry")
    poster = Poster(endpoint, token, settings)
    on_start(len(chunks))
    try:
        for chunk in chunks:

            def count() -> None:
                summary.attempts += 1

            size = poster.send(chunk, count)
            at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for key in chunk.image_keys:
                acknowledged[key] = {"chunk": chunk.key, "at": at}
            summary.sent += 1
            summary.bytes_sent += size
            write_json_atomic(ledger_path, {"acknowledged": ledger})
            on_chunk(1)
    finally:
        poster.close()
    return summary


def token_from_environment(settings: ServiceSettings) -> str | None:
    value = os.environ.get(settings.token_env, "").strip()
    return value or None
