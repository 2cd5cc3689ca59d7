"""Several Triton replicas behind one client (the ``SegmentationClient`` calls, spread over them).

Each request goes to the ready replica with the fewest requests in flight (then the one sent
fewest). A request that fails with UNAVAILABLE, CANCELLED or a timeout, or with NOT_FOUND for a
model the replicas were found serving (a replica shutting down unloads its models first), is sent
again to another ready replica, each replica at most once per request; any other answer (a bad
image, a model error) is the request's own and is not retried. A replica that fails that way, or whose health
check fails, is taken out; every few seconds a fresh connection asks it again and re-admits it
once it is ready and serves the same builds of the models asked so far (a replica that was
rolled to another build stays out: its answers would not match the others').

A ``dns:///NAME:PORT`` address stands for every address NAME resolves to (a Kubernetes headless
Service: one per ready pod), resolved again every few seconds: a pod that appears joins once it is
ready, one whose address is gone is taken out.

Nothing is answered twice: a request is only re-sent when no answer came back for it, and the
caller writes what the one answer says.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tritonclient.utils import InferenceServerException

from clients.triton.client import (
    DEADLINE_EXCEEDED,
    DEFAULT_TIMEOUT_S,
    ClassificationResult,
    ClientError,
    InstanceResult,
    ModelInfo,
    SegmentationClient,
    SemanticResult,
)

DEFAULT_URL = "127.0.0.1:8001"  # where seg-serve's gRPC port is, by default
CHECK_EVERY_S = 2.0  # how often each replica's readiness is asked
RESOLVE_EVERY_S = 10.0  # how often a dns:/// address is resolved again
DNS = "dns:"
UNAVAILABLE = "StatusCode.UNAVAILABLE"
CANCELLED = "StatusCode.CANCELLED"
NOT_FOUND = "StatusCode.NOT_FOUND"
SEND_ELSEWHERE = frozenset({UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED})


def connect(
    urls: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, on_event: Callable[[str], None] = print
) -> ReplicaSet:
    """The servers an inferring command talks to (``--url``, repeated or comma-separated)."""
    return ReplicaSet(urls, timeout_s=timeout_s, on_event=on_event)


def split_urls(values: Sequence[str]) -> list[str]:
    """``--url a --url b,c`` → [a, b, c], each once, in the order given."""
    urls = [u.strip() for value in values for u in value.split(",")]
    return list(dict.fromkeys(u for u in urls if u))


def resolve(name: str) -> list[str]:
    """``NAME:PORT`` → every ``ADDRESS:PORT`` NAME resolves to (IPv6 in brackets), sorted;
    ClientError when it resolves to nothing."""
    host, _, port = name.rpartition(":")
    if not host or not port.isdigit():
        raise ClientError(f"--url {DNS}///{name}: give {DNS}///NAME:PORT, e.g. {DNS}///triton.ns:8001")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ClientError(f"--url {DNS}///{name}: {host} does not resolve ({exc.strerror or exc})") from None
    found = {
        f"[{info[4][0]}]:{port}" if info[0] == socket.AF_INET6 else f"{info[4][0]}:{port}" for info in infos
    }
    return sorted(found)


def _dns_name(url: str) -> str | None:
    """``dns:///NAME:PORT`` or ``dns:NAME:PORT`` → ``NAME:PORT``; None for a plain address."""
    if not url.startswith(DNS):
        return None
    return url[len(DNS) :].removeprefix("///")


@dataclass(eq=False)
class Replica:
    url: str
    client: SegmentationClient
    ready: bool = False
    in_flight: int = 0
    sent: int = 0
    answered: int = 0
    sent_elsewhere: int = 0  # requests that failed here and went to another replica
    outages: int = 0  # times it was taken out
    refusal: str | None = None  # why it may not join, as last said
    gone: bool = False  # its dns:/// name no longer resolves to it: not asked again
    watcher: int = 0  # which of its health-check threads is the live one


class ReplicaSet:
    """The replicas at ``urls`` (one or more; ``dns:///NAME:PORT`` for every address of NAME).
    ``on_event`` hears, one line each, a replica taken out, re-admitted or found. Ready replicas
    are asked at start (ClientError when none is); the others join when they are ready. With one
    plain address there is nowhere else to send a request: it is never taken out, and its failures
    reach the caller as they would from a SegmentationClient. ``resolver`` turns NAME:PORT into
    addresses (the tests give their own)."""

    def __init__(
        self,
        urls: Sequence[str],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        check_every_s: float = CHECK_EVERY_S,
        connect_timeout_s: float = 5.0,
        on_event: Callable[[str], None] = lambda line: None,
        resolver: Callable[[str], list[str]] = resolve,
        resolve_every_s: float = RESOLVE_EVERY_S,
    ):
        urls = split_urls(urls)
        if not urls:
            raise ClientError("no Triton address given; pass --url HOST:PORT")
        self.timeout_s = timeout_s
        self.check_every_s = check_every_s
        self.url = ", ".join(urls)  # how messages name the server(s)
        self._on_event = on_event
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._models: dict[str, ModelInfo] = {}  # what was asked, as the ready replicas serve it
        self._names = [name for u in urls if (name := _dns_name(u)) is not None]
        self._resolver = resolver
        if len(urls) == 1 and not self._names:  # the single server's own checks and messages
            self._replicas = [
                Replica(urls[0], SegmentationClient(urls[0], timeout_s, connect_timeout_s), True)
            ]
            return
        plain = [u for u in urls if _dns_name(u) is None]
        addresses = list(dict.fromkeys(plain + [a for name in self._names for a in resolver(name)]))
        self._replicas = [Replica(a, SegmentationClient(a, timeout_s, check=False)) for a in addresses]
        self._plain = set(plain)
        problems = self._ask_all(self._replicas)
        for replica, problem in zip(self._replicas, problems):
            replica.ready = problem is None
        if not any(r.ready for r in self._replicas):
            self.close()
            listed = "; ".join(f"{r.url} {p}" for r, p in zip(self._replicas, problems))
            raise ClientError(
                f"no Triton replica is ready ({listed}); start them (seg-serve or tritonserver) "
                "or check --url"
            )
        for replica, problem in zip(self._replicas, problems):
            if problem is not None:
                on_event(f"replica {replica.url} {problem}; it joins when it is ready")
        for replica in self._replicas:
            self._start_watching(replica)
        if self._names:
            threading.Thread(
                target=self._follow_dns, args=(resolve_every_s,), name="replicas dns", daemon=True
            ).start()

    # --- what SegmentationClient offers ------------------------------------------------------

    def model_info(self, model: str) -> ModelInfo:
        """The model as the ready replicas serve it; ClientError when they serve different
        builds of it (a rollout half done): their answers would differ."""
        ready = self._ready() or self._replicas[:1]
        infos = [(r, r.client.model_info(model)) for r in ready]
        first_replica, first = infos[0]
        for replica, info in infos[1:]:
            if _build_of(info) != _build_of(first):
                raise ClientError(
                    f"replicas serve different builds of {model!r}: {first_replica.url} "
                    f"{_build_of(first)}, {replica.url} {_build_of(info)}; give --url only the "
                    "replicas of one build (or wait for the rollout to finish)"
                )
        self._models[model] = first
        return first

    def served_models(self) -> list[str]:
        return (self._ready() or self._replicas[:1])[0].client.served_models()

    def health_problem(self) -> str | None:
        """None while some replica answers that it is ready; else what is wrong, as a phrase.
        A replica found not ready here is taken out."""
        if not self._spread():
            return self._replicas[0].client.health_problem()
        replicas = self._current()
        problems = self._ask_all(replicas)
        for replica, problem in zip(replicas, problems):
            if problem is not None and replica.ready:
                self._take_out(replica, problem)
        if any(p is None for p in problems):
            return None
        listed = "; ".join(f"{r.url} {p}" for r, p in zip(replicas, problems))
        return f"is down on every replica ({listed})"

    def infer_instances(self, model: str, *args, **kwargs) -> InstanceResult:
        return self._send("infer_instances", model, *args, **kwargs)

    def infer_semantic(self, model: str, *args, **kwargs) -> SemanticResult:
        return self._send("infer_semantic", model, *args, **kwargs)

    def infer_classes(self, model: str, *args, **kwargs) -> ClassificationResult:
        return self._send("infer_classes", model, *args, **kwargs)

    def close(self) -> None:
        """Stops the health checks and ends every request in flight at once (they raise
        CANCELLED, which is then not sent elsewhere)."""
        self._closed = True
        self._stop.set()
        for replica in self._current():
            replica.client.close()

    # --- what a run reports -------------------------------------------------------------------

    def requests_per_replica(self) -> dict[str, int]:
        with self._lock:
            return {r.url: r.answered for r in self._replicas}

    def summary(self) -> str | None:
        """One line for the end of a run: answers per replica and what failed over; None with a
        single replica."""
        if not self._spread():
            return None
        with self._lock:
            parts = [f"{r.url} {r.answered}" for r in self._replicas]
            moved = sum(r.sent_elsewhere for r in self._replicas)
            outages = [f"{r.url} {r.outages}×" for r in self._replicas if r.outages]
        line = "answers per replica: " + ", ".join(parts)
        if moved:
            line += f"; {moved} requests sent again to another replica"
        if outages:
            line += f"; taken out: {', '.join(outages)}"
        return line

    # --- the spreading -----------------------------------------------------------------------

    def _send(self, method: str, model: str, *args, **kwargs):
        tried: list[Replica] = []
        error: InferenceServerException | None = None
        while (replica := self._pick(tried)) is not None:
            tried.append(replica)
            try:
                answer = getattr(replica.client, method)(model, *args, **kwargs)
            except InferenceServerException as exc:
                if self._closed or not self._spread() or not self._elsewhere(exc, model):
                    raise
                error = exc
                if exc.status() != DEADLINE_EXCEEDED:
                    self._take_out(replica, f"failed a request ({_first_line(exc)})")
                elif (problem := replica.client.health_problem()) is not None:
                    self._take_out(replica, problem)  # hung, not just slow
                with self._lock:
                    replica.sent_elsewhere += 1
                continue
            finally:
                with self._lock:
                    replica.in_flight -= 1
            with self._lock:
                replica.answered += 1
            return answer
        if error is not None:
            raise error
        raise InferenceServerException(f"no Triton replica is ready ({self.url})", status=UNAVAILABLE)

    def _elsewhere(self, exc: InferenceServerException, model: str) -> bool:
        """Whether another replica may answer what this one failed: it had no answer for it, or
        it no longer serves a model the replicas were found serving (a replica shutting down
        unloads its models first; one reloading has no version for a moment)."""
        return exc.status() in SEND_ELSEWHERE or (exc.status() == NOT_FOUND and model in self._models)

    def _pick(self, tried: list[Replica]) -> Replica | None:
        """The ready replica, not yet tried for this request, with the fewest requests in flight."""
        with self._lock:
            candidates = [r for r in self._replicas if r.ready and r not in tried]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: (r.in_flight, r.sent))
            chosen.in_flight += 1
            chosen.sent += 1
            return chosen

    def _ready(self) -> list[Replica]:
        with self._lock:
            return [r for r in self._replicas if r.ready]

    def _current(self) -> list[Replica]:
        with self._lock:
            return list(self._replicas)

    def _spread(self) -> bool:
        """False for the single plain address, which is never taken out."""
        return len(self._replicas) > 1 or bool(self._names)

    def _take_out(self, replica: Replica, problem: str) -> None:
        if not self._spread():
            return
        with self._lock:
            if not replica.ready:
                return
            replica.ready = False
            replica.outages += 1
        self._on_event(f"replica {replica.url} {problem}: taken out, its requests go to the others")

    @staticmethod
    def _ask_all(replicas: list[Replica]) -> list[str | None]:
        """Each replica's health problem (None: ready), asked at once."""
        with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
            return list(pool.map(lambda r: r.client.health_problem(), replicas))

    def _start_watching(self, replica: Replica) -> None:
        with self._lock:
            replica.watcher += 1
            generation = replica.watcher
        threading.Thread(
            target=self._watch, args=(replica, generation), name=f"replica {replica.url}", daemon=True
        ).start()

    def _follow_dns(self, every_s: float) -> None:
        """Resolves the dns:/// names again every ``every_s``: a new address is added (it joins once
        it is ready and serves the same builds), one no longer listed is taken out and not asked
        again until it is listed again. A failed lookup changes nothing."""
        while not self._stop.wait(every_s):
            listed: set[str] = set(self._plain)
            try:
                for name in self._names:
                    listed.update(self._resolver(name))
            except ClientError as exc:
                self._on_event(f"replicas: {exc}; keeping the replicas known")
                continue
            known = {r.url: r for r in self._current()}
            for replica in known.values():
                if replica.url not in listed and not replica.gone:
                    replica.gone = True  # first: its watcher must not re-admit it meanwhile
                    self._take_out(replica, "is no longer listed by DNS")
                elif replica.url in listed and replica.gone:
                    replica.gone = False
                    self._start_watching(replica)
            for address in sorted(listed - set(known)):
                replica = Replica(address, SegmentationClient(address, self.timeout_s, check=False))
                with self._lock:
                    self._replicas.append(replica)
                self._on_event(f"replica {address} found by DNS; it joins when it is ready")
                self._start_watching(replica)

    def _watch(self, replica: Replica, generation: int) -> None:
        """Every few seconds: a ready replica is asked whether it still is; one that is out is
        asked over a fresh connection (the old one may be waiting out gRPC's reconnect backoff).
        It stops when the replica is gone from DNS (or another watcher took over)."""
        while not self._stop.wait(self.check_every_s) and not replica.gone and replica.watcher == generation:
            if replica.ready:
                if (problem := replica.client.health_problem()) is not None and not self._closed:
                    self._take_out(replica, problem)
                continue
            fresh = SegmentationClient(replica.url, self.timeout_s, check=False)
            problem = fresh.health_problem()
            if problem is None and (refusal := self._other_build(fresh)) is not None:
                if refusal != replica.refusal:
                    self._on_event(f"replica {replica.url} {refusal}: it stays out")
                replica.refusal, problem = refusal, refusal
            if problem is not None or self._closed or replica.gone:
                fresh.close()
                continue
            with self._lock:
                old, replica.client, replica.ready, replica.refusal = replica.client, fresh, True, None
            old.close()
            self._on_event(f"replica {replica.url} is ready again: re-admitted")

    def _other_build(self, client: SegmentationClient) -> str | None:
        """Why ``client``'s server may not join (it serves another build of a model asked, or
        not at all), or None."""
        for name, info in list(self._models.items()):
            try:
                theirs = client.model_info(name)
            except ClientError as exc:
                return f"is ready but cannot serve {name!r} ({exc})"
            if _build_of(theirs) != _build_of(info):
                return f"serves another build of {name!r} ({_build_of(theirs)}, not {_build_of(info)})"
        return None


Servers = SegmentationClient | ReplicaSet  # what the request loop and the writers send through


def _build_of(info: ModelInfo) -> str:
    """What tells two builds of a model apart: the checksum of the weights build-repo recorded."""
    weights = info.metadata.checksums.get("weights_sha256", "")
    return (
        f"weights sha256:{weights[:16]}" if weights else f"segstack {info.metadata.versions.get('segstack')}"
    )


def _first_line(exc: InferenceServerException) -> str:
    return (exc.message() or str(exc)).splitlines()[0]
