"""What the HTTP clients (groups pull, meta post) share: how they name themselves, which failures
are worth another attempt, how long to wait before it, and a server's Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

T = TypeVar("T")


def user_agent(tool: str) -> str:
    """``segstack-<tool>/<version> (+httpx/<version>)``: who is asking, for the server's logs."""
    try:
        version = metadata.version("segstack")
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"segstack-{tool}/{version} (+httpx/{httpx.__version__})"


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transient(Exception):
    """A failure another attempt may not have (a dropped connection, a 5xx, a 429): retried, after
    ``retry_after`` seconds where the server asked for them."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    """Exponential waits with jitter between attempts (clients that failed together do not retry
    together); a server's Retry-After instead, up to ``max_retry_after_s``."""

    retries: int  # attempts after the first
    first_s: float = 0.5
    max_s: float = 8.0
    max_retry_after_s: float = 5.0

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after_s)
        # written out because tenacity's wait_exponential_jitter renamed its arguments between 8 and 9
        return min(self.max_s, self.first_s * 2 ** (state.attempt_number - 1)) + random.uniform(
            0, self.first_s
        )

    def run(self, attempt: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
        """``attempt()`` until it does not raise Transient, at most ``retries`` more times; the last
        Transient is raised."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self.wait,
            retry=retry_if_exception_type(Transient),
            sleep=sleep,
            reraise=True,
        )
        return retrying(attempt)
