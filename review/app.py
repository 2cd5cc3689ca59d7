"""The review page's web application (Starlette): the page, its JSON API, the crops and pictures.

Every read and every decision goes through the store's API (``SegmentStore``): the app has no SQL
of its own. Pictures are served only for image rows of the store, from their stored path under
DATA/pictures (``review.pictures``); no path in a request reaches the disk. Badlisted images'
segments and pictures are not served.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from review.access import Access, valid_reviewer
from review.decisions import Decision, apply_decisions, counted, group_counts
from review.pictures import PictureError, Pictures, fingerprint
from review.queue import MAX_PAGE, QueueFilter, QueueItem, ReviewQueue
from segcontract.errors import SegstackError, one_line
from store.records import Status, StoredImage
from store.segment_store import SegmentStore

HERE = Path(__file__).parent
MAX_BODY = 256 * 1024  # bytes of one API request
MAX_LOGIN_FORM = 4096  # bytes of the login form
MAX_ID = 2**31  # segment ids and revisions are 32-bit integers in the store
SESSION_DAYS = 30
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass
class ReviewApp:
    """What every request of one page server shares."""

    store: SegmentStore
    queue: ReviewQueue
    pictures: Pictures
    access: Access
    group: str
    page_size: int = 24
    warmer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2, "seg-review-crops"))
    skipped: dict[str, set[int]] = field(default_factory=dict)  # reviewer → segments skipped
    # reviewer → segments shown since their page was (re)loaded: never shown to them twice, even
    # before their decision arrives or when the filter is on decided segments
    shown: dict[str, set[int]] = field(default_factory=dict)
    _counts: tuple[float, float, dict[str, int]] | None = None  # (when, how long it took, counts)
    _counts_lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self, results: Sequence[dict[str, Any]] = ()) -> dict[str, int]:
        """The group's counts after ``results`` (this server's decisions, just applied). They are
        read again when older than ten times as long as reading them takes (at least 2 s), and
        moved by the decisions in between, so a decision does not count a large group again."""
        with self._counts_lock:
            cached = self._counts
            if cached is not None and time.monotonic() - cached[0] < max(2.0, 10 * cached[1]):
                counts = counted(cached[2], results)
                self._counts = (cached[0], cached[1], counts)
                return counts
            started = time.monotonic()
            counts = group_counts(self.store, self.group)  # the decisions are in it already
            self._counts = (time.monotonic(), time.monotonic() - started, counts)
            return counts

    def item_json(self, item: QueueItem) -> dict[str, Any]:
        s = item.segment
        return {
            "id": s.id,
            "revision": s.revision,
            "status": s.status.value,
            "image_id": s.image_id,
            "image": s.image,
            "model": s.model,
            "class_name": s.class_name,
            "score": round(s.score, 4),
            "bbox": [round(v, 1) for v in s.bbox],
            "doubt": round(item.doubt.value, 3),
            "reasons": item.doubt.reasons(),
            "reviewer": s.reviewer,
            "crop": f"/crop/{s.id}?r={fingerprint(s)}",
        }

    def group_image(self, image_id: int) -> StoredImage | None:
        """The stored image ``image_id`` when it is in the page's group and not badlisted."""
        image = self.store.image(image_id)
        if image is None or image.badlisted or self.group not in image.groups:
            return None
        return image

    def warm(self, items: list[QueueItem]) -> None:
        """Cut the crops of these segments in the background, one decode per picture."""
        by_image: dict[int, list] = {}
        for item in items:
            by_image.setdefault(item.segment.image_id, []).append(item.segment)
        for image_id, segments in by_image.items():
            self.warmer.submit(self._cut, image_id, segments)

    def _cut(self, image_id: int, segments: list) -> None:
        image = self.group_image(image_id)
        if image is not None:
            with contextlib.suppress(PictureError):  # the crop's own request reports it
                self.pictures.cut_crops(image, segments)


class Unauthorised(SegstackError):
    """A request the page does not take: 401 without a login or token, 403 (``forbidden``) for a
    POST without the session's CSRF token or from another site."""

    def __init__(self, message: str, forbidden: bool = False):
        super().__init__(message)
        self.status = 403 if forbidden else 401


def _identity(app: ReviewApp, request: Request, posting: bool) -> str:
    """The reviewer making ``request``; Unauthorised when it is not allowed (no token, no name,
    a POST without the session's CSRF token)."""
    if app.access.bearer_ok(request.headers.get("authorization")):
        name = valid_reviewer(request.headers.get("x-reviewer", ""))
        if name is None:
            raise Unauthorised("a request with a bearer token names its reviewer in X-Reviewer")
        return name
    session = request.session
    if not app.access.session_ok(session.get("auth")):
        raise Unauthorised("log in with the page's token")
    name = session.get("reviewer")
    if not name:
        raise Unauthorised("give your reviewer name")
    if posting:
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Unauthorised("a POST from another site: refused (CSRF)", forbidden=True)
        given = request.headers.get("x-csrf-token", "")
        if not given or not secrets.compare_digest(given, session.get("csrf", "")):
            raise Unauthorised("the request carries no valid CSRF token: reload the page", forbidden=True)
    return name


def _guarded(
    app: ReviewApp, handler: Callable[[ReviewApp, Request, str], Awaitable[Response]], posting: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            reviewer = _identity(app, request, posting)
        except Unauthorised as exc:
            if request.url.path == "/":
                return RedirectResponse("/login", status_code=303)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        try:
            return await handler(app, request, reviewer)
        except SegstackError as exc:  # the store stopped answering, a picture went missing...
            return JSONResponse({"error": one_line(exc)}, status_code=503)

    return endpoint


async def _body(request: Request) -> dict:
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise ValueError(f"a request of at most {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ValueError(f"a request of at most {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:
        raise ValueError("a JSON object nested less deeply") from None
    if not isinstance(body, dict):
        raise ValueError("a JSON object")
    return body


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_ID:
        raise ValueError(f"segment ids and revisions: whole numbers from 1 to {MAX_ID - 1}")
    return value


def _ids(values: Any, limit: int = 1000) -> list[int]:
    if not isinstance(values, list) or len(values) > limit:
        raise ValueError(f"a list of at most {limit} segment ids")
    return [_id(v) for v in values]


def _filter(body: dict) -> QueueFilter:
    status = body.get("status") or "unchecked"
    statuses = tuple(Status) if status == "any" else (Status(status),)

    def score(key: str) -> float | None:
        value = body.get(key)
        if value in (None, ""):
            return None
        number = float(value)
        if not 0 <= number <= 1:
            raise ValueError(f"{key}: a score from 0 to 1")
        return number

    return QueueFilter(
        model=body.get("model") or None,
        class_name=body.get("class_name") or None,
        statuses=statuses,
        min_score=score("min_score"),
        max_score=score("max_score"),
    )


def _bad_request(exc: Exception) -> JSONResponse:
    return JSONResponse({"error": f"bad request: expected {exc}"}, status_code=400)


# --- the page ------------------------------------------------------------------------------------


async def page(app: ReviewApp, request: Request, reviewer: str) -> Response:
    facets = await run_in_threadpool(app.queue.facets)
    return TEMPLATES.TemplateResponse(
        request,
        "page.html",
        {
            "group": app.group,
            "reviewer": reviewer,
            "csrf": request.session.get("csrf", ""),
            "facets": facets,
            "order": app.queue.order.value,
            "page_size": app.page_size,
        },
    )


def _csrf(request: Request) -> str:
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(24)
    return request.session["csrf"]


def login_page(app: ReviewApp) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return TEMPLATES.TemplateResponse(
                request,
                "login.html",
                {
                    "need_token": app.access.token is not None,
                    "csrf": _csrf(request),
                    "error": "",
                    "group": app.group,
                },
            )
        if int(request.headers.get("content-length") or 0) > MAX_LOGIN_FORM:
            return JSONResponse({"error": "bad request: a login form of a few fields"}, status_code=400)
        form = await request.form(max_fields=4, max_files=0, max_part_size=4096)
        error = ""
        expected = request.session.get("csrf", "")
        cross_site = request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")
        if cross_site or not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
            error = "The form was out of date: try again."
        elif not app.access.token_ok(str(form.get("token", "")) if app.access.token is not None else None):
            error = "That is not the page's token."
        elif (name := valid_reviewer(str(form.get("reviewer", "")))) is None:
            error = "A reviewer name: 1 to 64 letters, digits, spaces or . @ ' -"
        if error:
            return TEMPLATES.TemplateResponse(
                request,
                "login.html",
                {
                    "need_token": app.access.token is not None,
                    "csrf": _csrf(request),
                    "error": error,
                    "group": app.group,
                },
                status_code=400,
            )
        request.session.clear()
        request.session.update(
            {"reviewer": name, "auth": app.access.token_mark, "csrf": secrets.token_urlsafe(24)}
        )
        return RedirectResponse("/", status_code=303)

    return endpoint


async def logout(app: ReviewApp, request: Request, reviewer: str) -> Response:
    request.session.clear()
    return JSONResponse({"ok": True})


# --- the API -------------------------------------------------------------------------------------


async def next_segments(app: ReviewApp, request: Request, reviewer: str) -> Response:
    try:
        body = await _body(request)
        wanted = _filter(body)
        exclude = set(_ids(body.get("exclude", [])))
        count = min(_id(body.get("count") or app.page_size), MAX_PAGE)
    except (ValueError, TypeError, OverflowError) as exc:
        return _bad_request(exc)
    shown = app.shown.setdefault(reviewer, set())
    if body.get("restart"):
        shown.clear()
    exclude |= app.skipped.get(reviewer, set()) | shown
    items = await run_in_threadpool(app.queue.next_items, reviewer, wanted, count, exclude)
    shown.update(i.segment.id for i in items)
    app.warm(items)
    return JSONResponse({"items": [app.item_json(i) for i in items]})


async def decide(app: ReviewApp, request: Request, reviewer: str) -> Response:
    try:
        body = await _body(request)
        given = body.get("decisions")
        if not isinstance(given, list) or not 0 < len(given) <= MAX_PAGE:
            raise ValueError(f"decisions: a list of 1 to {MAX_PAGE}")
        decisions = [Decision(_id(d["id"]), _id(d["revision"]), Status(d["status"])) for d in given]
        reason = body.get("reason") or None
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise ValueError("reason: a text of at most 500 characters")
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        return _bad_request(exc)
    results = await run_in_threadpool(apply_decisions, app.store, decisions, reviewer, reason, app.group)
    for result in results:
        if result["ok"]:
            app.skipped.get(reviewer, set()).discard(result["id"])
    counts = await run_in_threadpool(app.counts, results)
    for result in results:
        result.pop("was", None)
    return JSONResponse({"results": results, "counts": counts})


async def skip(app: ReviewApp, request: Request, reviewer: str) -> Response:
    """Give segments back to the other reviewers: skipped (not shown to this reviewer again in
    this run), or only released (``remember: false``: the page changed its filters)."""
    try:
        body = await _body(request)
        ids = _ids(body.get("ids", []))
    except (ValueError, TypeError, OverflowError) as exc:
        return _bad_request(exc)
    if body.get("remember", True):
        app.skipped.setdefault(reviewer, set()).update(ids)
    await run_in_threadpool(app.store.release_leases, ids, reviewer)
    return JSONResponse({"skipped": ids})


async def renew(app: ReviewApp, request: Request, reviewer: str) -> Response:
    """Renew the reviewer's leases on the segments their page holds (the page asks every minute)."""
    try:
        ids = _ids((await _body(request)).get("ids", []))
    except (ValueError, TypeError, OverflowError) as exc:
        return _bad_request(exc)
    return JSONResponse({"renewed": await run_in_threadpool(app.queue.renew, reviewer, ids)})


async def counts(app: ReviewApp, request: Request, reviewer: str) -> Response:
    return JSONResponse(await run_in_threadpool(app.counts))


async def image_info(app: ReviewApp, request: Request, reviewer: str) -> Response:
    image_id = request.path_params["image_id"]

    def read() -> dict | None:
        image = app.group_image(image_id)
        if image is None:
            return None
        items = app.queue.current(app.queue.image_segment_ids(image_id))
        return {
            "id": image.id,
            "image": image.path,
            "width": image.width,
            "height": image.height,
            "picture": f"/picture/{image.id}?v={image.sha256[:12]}",  # a new picture: a new URL
            "segments": [
                {**app.item_json(item), "outlines": app.pictures.outlines(item.segment)} for item in items
            ],
        }

    found = await run_in_threadpool(read)
    if found is None:
        return JSONResponse({"error": f"no image {image_id} in group {app.group}"}, status_code=404)
    return JSONResponse(found)


async def _file(what: str, find: Callable[[], tuple[Path, str] | None]) -> Response:
    """The file ``find`` names (in a worker thread), or 404 saying there is no ``what``."""
    try:
        found = await run_in_threadpool(find)
    except PictureError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)
    if found is None:
        return JSONResponse({"error": f"no {what}"}, status_code=404)
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})


async def crop(app: ReviewApp, request: Request, reviewer: str) -> Response:
    segment_id = request.path_params["segment_id"]

    def cut() -> tuple[Path, str] | None:
        found = app.store.segments_by_id([segment_id])
        image = app.group_image(found[0].image_id) if found else None
        return None if image is None else (app.pictures.crop(found[0], image), "image/jpeg")

    return await _file(f"segment {segment_id} in group {app.group}", cut)


async def picture(app: ReviewApp, request: Request, reviewer: str) -> Response:
    image_id = request.path_params["image_id"]

    def view() -> tuple[Path, str] | None:
        image = app.group_image(image_id)
        return None if image is None else app.pictures.view(image)

    return await _file(f"image {image_id} in group {app.group}", view)


# --- the application -----------------------------------------------------------------------------

TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


class _SecurityHeaders:
    """Headers on every response: the content security policy, no sniffing, no framing."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(review: ReviewApp, allowed_hosts: Sequence[str] = ("*",)) -> Starlette:
    """The application. ``allowed_hosts``: the Host names requests may carry; on loopback, only
    loopback names, so a web page that points its own name at 127.0.0.1 (DNS rebinding) cannot
    reach the page from the reviewer's browser."""
    routes = [
        Route("/", _guarded(review, page)),
        Route("/login", login_page(review), methods=["GET", "POST"]),
        Route("/logout", _guarded(review, logout, posting=True), methods=["POST"]),
        Route("/api/next", _guarded(review, next_segments, posting=True), methods=["POST"]),
        Route("/api/decide", _guarded(review, decide, posting=True), methods=["POST"]),
        Route("/api/skip", _guarded(review, skip, posting=True), methods=["POST"]),
        Route("/api/renew", _guarded(review, renew, posting=True), methods=["POST"]),
        Route("/api/counts", _guarded(review, counts)),
        Route("/api/image/{image_id:int}", _guarded(review, image_info)),
        Route("/crop/{segment_id:int}", _guarded(review, crop)),
        Route("/picture/{image_id:int}", _guarded(review, picture)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        Middleware(_SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=review.access.secret,
            session_cookie="seg_review",
            max_age=SESSION_DAYS * 86400,
            same_site="strict",
            https_only=False,
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        review.warmer.shutdown(wait=False, cancel_futures=True)  # Ctrl-C does not wait for crops

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
