"""The loop every inferring command shares: one job per image, several requests in flight.

A failed image (unreadable file, rejected by the server) is reported and the others go on. A
server that stops answering or goes away ends the run at once (``ServerStopped``), as does Ctrl-C:
the requests in flight are cancelled rather than waited for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from tritonclient.utils import InferenceServerException

from clients.triton.client import (
    DEADLINE_EXCEEDED,
    INVALID_ARGUMENT,
    ClientError,
    ModelInfo,
    ServerStopped,
)
from clients.triton.image_sources import ImageItem
from clients.triton.replicas import Servers
from segcontract.errors import SegstackError
from segops.decode import unread_format

T = TypeVar("T")


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # image → reason
    detections: int = 0


class RequestError(SegstackError, ValueError):
    """The server refused or did not answer one image's request; ``status`` is gRPC's code."""

    def __init__(self, message: str, status: str | None):
        super().__init__(message)
        self.status = status


def read_image(item: ImageItem) -> bytes:
    """The file's bytes, as the ensemble takes them; ValueError (this image's failure) when they
    cannot be sent."""
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ValueError("empty file (0 bytes)")
    if (reason := unread_format(data[:16])) is not None:  # what the server and groups pull refuse
        raise ValueError(reason)
    return data


def asking(client: Servers, model: ModelInfo, request: Callable[[], T]) -> T:
    """Run one request; the server's refusal or silence becomes a RequestError with gRPC's code."""
    try:
        return request()
    except InferenceServerException as exc:
        if exc.status() == DEADLINE_EXCEEDED:
            raise RequestError(f"no reply within {client.timeout_s:g} s (--timeout)", exc.status()) from None
        message = (exc.message() or str(exc)).replace(f"in ensemble '{model.name}', ", "")
        raise RequestError(message, exc.status()) from None


def run_jobs(
    client: Servers,
    summary: RunSummary,
    jobs: Iterable[tuple[ImageItem, Callable[[], int]]],
    *,
    concurrency: int,
    results_at: str,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> None:
    """Run one job per image with ``concurrency`` in flight, counting into ``summary``: what each
    returns (detections) when it succeeds, its reason when it fails. An image's own failure
    (RequestError, ValueError) is recorded and the rest go on; a server that is down or stuck, an
    output that cannot be written, Ctrl-C or any other error ends the run with the requests in
    flight cancelled. ``results_at`` says in messages where the finished work is. ``jobs`` is
    read as the work goes (a few ahead of what is in flight): it may be claimed as it comes."""
    workers = max(1, concurrency)
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: dict[Future, ImageItem] = {}
    source = iter(jobs)
    timed_out = 0  # requests in a row with no reply although the server answers health checks

    def top_up() -> None:
        for item, job in itertools.islice(source, max(0, 2 * workers - len(pending))):
            pending[pool.submit(job)] = item

    try:
        top_up()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                item = pending.pop(future)
                try:
                    summary.detections += future.result()
                    summary.written += 1
                    timed_out = 0
                except RequestError as exc:
                    if exc.status != INVALID_ARGUMENT:  # maybe not this image's fault: ask the server
                        _stop_if_server_is_down(client, results_at)
                        timed_out = timed_out + 1 if exc.status == DEADLINE_EXCEEDED else 0
                        if timed_out >= max(2, concurrency):
                            raise ServerStopped(
                                f"Triton at {client.url} answers health checks, but {timed_out} requests in "
                                f"a row got no reply within {client.timeout_s:g} s: its model seems stuck "
                                f"(raise --timeout if the images are just slow); results so far are in "
                                f"{results_at}, a re-run resumes"
                            ) from None
                    summary.failed[str(item.path)] = str(exc)
                    on_failure(str(item.path), str(exc))
                except ValueError as exc:
                    summary.failed[str(item.path)] = str(exc)
                    on_failure(str(item.path), str(exc))
                except OSError as exc:  # cannot write the output: every image would fail the same way
                    raise ClientError(
                        f"cannot write results under {results_at}: {exc.strerror or exc}"
                    ) from None
                on_progress(1)
            top_up()
    except BaseException:
        # Ctrl-C or a fatal error: end the requests in flight now (else each waits out its timeout)
        # and drop the queued images; finished ones are saved, a re-run resumes
        client.close()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _stop_if_server_is_down(client: Servers, results_at: str) -> None:
    problem = client.health_problem()
    if problem is not None:
        raise ServerStopped(
            f"Triton at {client.url} {problem}; results so far are in {results_at}, a re-run resumes"
        )
