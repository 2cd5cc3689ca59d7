"""``seg-client meta post``: a group's ret_meta.json to the metadata service, in chunks, each sent
until the service acknowledges it, none acknowledged twice.

A chunk is ``{"format", "group", "models", "images": [chunk_size images]}`` as compact JSON,
gzip-compressed, POSTed with ``Authorization: Bearer <token>`` (from the environment variable the
configuration names; never printed) and ``Idempotency-Key: <sha256 of the chunk's JSON>``: the
same content always has the same key, so a service that keeps the keys it has seen applies a
resent chunk once. Connection errors, timeouts, 5xx and 429 are retried with exponential backoff
(a Retry-After is honoured); another 4xx ends the run with the service's message.

The ledger beside ret_meta.json (``ret_meta.posted.json``) lists, per endpoint, the keys the
service acknowledged; it is rewritten atomically after each acknowledgement, so a killed run
loses at most the acknowledgement of the chunk in flight (and its re-run resends that chunk with
the same key), and a re-run sends only what is not acknowledged. A rebuilt ret_meta whose images
changed makes new chunks, which are sent; unchanged ones are not.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from clients.config_file import ServiceSettings
from clients.http_retry import Backoff, Transient, retry_after_seconds
from clients.triton import ClientError
from segcontract.files import write_json_atomic

LEDGER_FILE = "ret_meta.posted.json"
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0
FIRST_BACKOFF_S = 0.5
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Chunk:
    index: int
    images: int
    body: bytes  # the compact JSON, before gzip
    key: str  # its sha256: the Idempotency-Key


@dataclass
class PostSummary:
    group: str
    chunks: int = 0
    sent: int = 0
    already: int = 0  # acknowledged by an earlier run
    attempts: int = 0
    bytes_sent: int = 0  # compressed
    ledger: Path | None = None
    keys: list[str] = field(default_factory=list)


def make_chunks(document: dict, chunk_size: int) -> list[Chunk]:
    images = document.get("images", [])
    head = {
        "format": document.get("format"),
        "group": document.get("group"),
        "models": document.get("models", []),
    }
    chunks = []
    for index, start in enumerate(range(0, max(len(images), 1), chunk_size)):  # a group of none: one chunk
        part = images[start : start + chunk_size]
        body = json.dumps({**head, "images": part}, sort_keys=True, separators=(",", ":")).encode()
        chunks.append(Chunk(index, len(part), body, hashlib.sha256(body).hexdigest()))
    return chunks


def load_ledger(path: Path) -> dict[str, dict[str, dict]]:
    """Endpoint → acknowledged key → what the service said; {} where there is none yet."""
    try:
        ledger = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ClientError(
            f"{path}: unreadable ledger ({exc}); move it away to send every chunk again"
        ) from None
    return ledger.get("acknowledged", {}) if isinstance(ledger, dict) else {}


def check_endpoint(endpoint: str) -> None:
    """https anywhere; plain http only to this machine (the token would travel in clear)."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
        raise ClientError(f"endpoint {endpoint}: plain http would send the token in clear; use https")
    raise ClientError(f"endpoint {endpoint!r}: expected an http(s):// URL")


def _user_agent() -> str:
    try:
        version = metadata.version("segstack")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"segstack-meta-post/{version} (+httpx/{httpx.__version__})"


class Poster:
    """One endpoint, one token, an httpx client with TLS checked (``ca_bundle`` or the system's)."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        settings: ServiceSettings,
        sleep: Callable[[float], None] = time.sleep,
    ):
        check_endpoint(endpoint)
        self.endpoint = endpoint
        self.token = token
        self.settings = settings
        self.sleep = sleep
        verify: str | bool = str(settings.ca_bundle) if settings.ca_bundle else True
        if settings.ca_bundle and not Path(settings.ca_bundle).is_file():
            raise ClientError(f"ca_bundle {settings.ca_bundle}: no such file")
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s),
            verify=verify,
            headers={"User-Agent": _user_agent()},
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def _clean(self, text: str) -> str:
        text = " ".join(str(text).split())
        return (text.replace(self.token, "***") if self.token else text)[:MESSAGE_CHARS]

    def send(self, chunk: Chunk, on_attempt: Callable[[], None] = lambda: None) -> dict:
        """POST ``chunk`` until it is acknowledged (2xx); what the service answered, for the ledger."""
        payload = gzip.compress(chunk.body, mtime=0)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": chunk.key,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }

        def attempt() -> dict:
            on_attempt()
            try:
                response = self.client.post(self.endpoint, content=payload, headers=headers)
            except httpx.TransportError as exc:  # refused, dropped, timed out, TLS
                if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise ClientError(
                        f"{self.endpoint}: its TLS certificate is not trusted ({self._clean(exc)}); "
                        "give the CA with --ca-bundle"
                    ) from None
                raise Transient(f"{type(exc).__name__}: {self._clean(exc) or 'no detail'}") from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(
                    f"HTTP {response.status_code}: {self._clean(response.text)}",
                    retry_after_seconds(response.headers.get("retry-after")),
                )
            if not 200 <= response.status_code < 300:
                raise ClientError(
                    f"{self.endpoint} refused chunk {chunk.index + 1} (HTTP {response.status_code}): "
                    f"{self._clean(response.text) or response.reason_phrase}"
                )
            return {
                "status": response.status_code,
                "images": chunk.images,
                "bytes": len(payload),
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }

        backoff = Backoff(self.settings.retries, FIRST_BACKOFF_S, MAX_BACKOFF_S, MAX_RETRY_AFTER_S)
        try:
            return backoff.run(attempt, self.sleep)
        except Transient as exc:
            raise ClientError(
                f"{self.endpoint}: chunk {chunk.index + 1} not acknowledged after "
                f"{self.settings.retries + 1} attempts (last: {exc}); a re-run sends what is left"
            ) from None


def post_group(
    ret_meta: Path,
    endpoint: str,
    token: str | None,
    settings: ServiceSettings,
    dry_run: bool = False,
    on_chunk: Callable[[int], None] = lambda n: None,
) -> PostSummary:
    """Send the chunks of ``ret_meta`` the ledger does not list as acknowledged by ``endpoint``."""
    try:
        document = json.loads(ret_meta.read_text())
    except FileNotFoundError:
        raise ClientError(f"{ret_meta}: no such file; run `seg-client meta build` first") from None
    except (OSError, ValueError) as exc:
        raise ClientError(f"{ret_meta}: not a readable ret_meta.json ({exc})") from None
    chunks = make_chunks(document, settings.chunk_size)
    ledger_path = ret_meta.with_name(LEDGER_FILE)
    ledger = load_ledger(ledger_path)
    acknowledged = ledger.setdefault(endpoint, {})
    summary = PostSummary(str(document.get("group")), len(chunks), ledger=ledger_path)
    summary.keys = [c.key for c in chunks]
    todo = [c for c in chunks if c.key not in acknowledged]
    summary.already = len(chunks) - len(todo)
    if dry_run or not todo:
        return summary
    if not token:
        raise ClientError(f"${settings.token_env} is not set: export the metadata service's token and retry")
    poster = Poster(endpoint, token, settings)
    try:
        for chunk in todo:

            def count() -> None:
                summary.attempts += 1

            acknowledged[chunk.key] = poster.send(chunk, count)
            summary.sent += 1
            summary.bytes_sent += acknowledged[chunk.key]["bytes"]
            write_json_atomic(ledger_path, {"acknowledged": ledger})
            on_chunk(1)
    finally:
        poster.close()
    return summary


def token_from_environment(settings: ServiceSettings) -> str | None:
    value = os.environ.get(settings.token_env, "").strip()
    return value or None
