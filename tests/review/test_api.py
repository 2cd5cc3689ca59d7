"""The review page's HTTP API against a real ``seg-review serve`` process and a real segment store:
who may use it (login, CSRF, the token off loopback), leases shared out between reviewers,
decisions recorded through the store's review API (stale and leased ones refused), the queue's
filters and orders, badlisted images hidden, no request path reaching the disk, bounded work, and
the command's refusals to start."""

from __future__ import annotations

import hashlib
import http.client
import subprocess
import sys
from contextlib import closing
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from store.records import ImageFacts, NewSegment, SegmentSelection, Status
from store.segment_store import SegmentStore
from tests.fixtures.review_group import MODEL, ReviewGroup, make_review_group
from tests.fixtures.review_server import REPO_ROOT, ReviewServer, logged_in

EVERYTHING = 200  # the most one /api/next may lease


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> ReviewGroup:
    """A group the read-only tests share (they never decide, and each uses its own reviewers)."""
    return make_review_group(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def shared_server(shared):
    with ReviewServer(shared) as server:
        yield server


@pytest.fixture
def group(tmp_path) -> ReviewGroup:
    return make_review_group(tmp_path)


@pytest.fixture
def server(group):
    with ReviewServer(group) as running:
        yield running


def _next(client: httpx.Client, **body) -> list[dict]:
    """The next segments, as a page just loaded asks (``restart``: the server forgets what it
    showed this reviewer before), unless the body says otherwise."""
    answer = client.post("/api/next", json={"count": EVERYTHING, "restart": True, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _decide(client: httpx.Client, *decisions: tuple[int, int, str], **extra) -> dict:
    body = {"decisions": [{"id": i, "revision": r, "status": s} for i, r, s in decisions], **extra}
    answer = client.post("/api/decide", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _segment(store: SegmentStore, segment_id: int):
    (found,) = store.segments_by_id([segment_id])
    return found


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=20, follow_redirects=False, trust_env=False)


def _serve(group: ReviewGroup, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "review", "serve", "--db", group.db, "--data-root", str(group.root)]
    return subprocess.run([*command, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)


# --- who may use the page ------------------------------------------------------------------------


def test_without_a_login_the_page_redirects_and_the_api_refuses(shared_server):
    with _client(shared_server.url) as client:
        page = client.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert client.get("/api/counts").status_code == 401
        assert client.post("/api/next", json={}).status_code == 401
        assert client.get("/crop/1").status_code == 401

        form = client.get("/login")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        refused = client.post("/login", data={"csrf": csrf, "reviewer": "<script>alert(1)</script>"})
        assert refused.status_code == 400
        assert "A reviewer name" in refused.text
        assert "<script" not in refused.text.lower() and "alert(1)" not in refused.text
        assert client.get("/api/counts").status_code == 401  # still nobody


def test_posts_need_the_sessions_csrf_token(shared_server, shared):
    client = logged_in(shared_server, "csrf checker")
    with closing(client), httpx.Client(base_url=shared_server.url, timeout=20, trust_env=False) as bare:
        bare.cookies = client.cookies  # the same session, without the page's header
        missing = bare.post("/api/next", json={"count": 5})
        assert missing.status_code == 403 and "CSRF" in missing.json()["error"]
        wrong = bare.post("/api/next", json={"count": 5}, headers={"X-CSRF-Token": "not-the-sessions"})
        assert wrong.status_code == 403
        assert bare.get("/api/counts").status_code == 200  # a GET needs none
        with SegmentStore.open(shared.db) as store:
            ids = [s.id for s in store.segments(group=shared.group)]
            assert "csrf checker" not in store.lease_holders(ids).values()  # nothing was leased
        assert len(_next(client, count=1)) == 1  # with the header it works

    with _client(shared_server.url) as fresh:
        fresh.get("/login")
        forged = fresh.post("/login", data={"csrf": "forged", "reviewer": "mallory"})
        assert forged.status_code == 400 and "out of date" in forged.text
        assert fresh.get("/").status_code == 303


# --- leases and decisions ------------------------------------------------------------------------


def test_two_reviewers_get_disjoint_segments_covering_the_group(server, group):
    with closing(logged_in(server, "alice")) as alice, closing(logged_in(server, "bob")) as bob:
        first = [item["id"] for item in _next(alice, count=10)]
        second = [item["id"] for item in _next(bob)]
        assert len(first) == 10 and len(second) == group.segments - 10
        assert not set(first) & set(second)
        assert _next(bob, exclude=second) == []  # nothing left that alice does not hold
        with SegmentStore.open(group.db) as store:
            ids = [s.id for s in store.segments(group=group.group)]
            assert set(first) | set(second) == set(ids)
            holders = {**dict.fromkeys(first, "alice"), **dict.fromkeys(second, "bob")}
            assert store.lease_holders(ids) == holders


def test_a_decision_goes_through_the_store_and_can_be_undone(server, group):
    with closing(logged_in(server, "Ada Lovelace")) as ada, SegmentStore.open(group.db) as store:
        item = _next(ada, count=1)[0]
        assert item["status"] == "unchecked" and item["model"] == MODEL
        answer = _decide(ada, (item["id"], item["revision"], "approved"), reason="looks right")
        (result,) = answer["results"]
        assert result["ok"] and result["status"] == "approved" and result["revision"] > item["revision"]
        assert answer["counts"]["approved"] == 1 and answer["counts"]["reviewed"] == 1

        stored = _segment(store, item["id"])
        assert stored.status is Status.APPROVED and stored.revision == result["revision"]
        assert stored.reviewer == "Ada Lovelace"
        (row,) = store.decisions([item["id"]])
        assert (row.reviewer, row.from_status, row.to_status, row.via) == (
            "Ada Lovelace", "unchecked", "approved", "seg-review",
        )  # fmt: skip
        assert row.reason == "looks right"
        counts = ada.get("/api/counts").json()
        assert counts["approved"] == 1 and counts["unchecked"] == group.segments - 1
        assert counts["total"] == group.segments

        undo = _decide(ada, (item["id"], result["revision"], "unchecked"))["results"][0]
        assert undo["ok"] and undo["status"] == "unchecked" and undo["revision"] > result["revision"]
        assert _segment(store, item["id"]).status is Status.UNCHECKED
        rows = store.decisions([item["id"]])
        assert [(r.from_status, r.to_status, r.reviewer, r.via) for r in rows] == [
            ("unchecked", "approved", "Ada Lovelace", "seg-review"),
            ("approved", "unchecked", "Ada Lovelace", "seg-review"),
        ]
        assert ada.get("/api/counts").json()["reviewed"] == 0


def test_a_decision_on_a_segment_changed_since_it_was_shown_is_refused(tmp_path, database_url):
    group = make_review_group(tmp_path, db=database_url)
    with (
        ReviewServer(group) as server,
        closing(logged_in(server, "alice")) as alice,
        SegmentStore.open(group.db) as store,
    ):
        shown, other = _next(alice, count=2)
        store.review_segments(SegmentSelection(ids=(shown["id"],)), Status.REJECTED, "someone", "test")
        answer = _decide(
            alice, (shown["id"], shown["revision"], "approved"), (other["id"], other["revision"], "approved")
        )
        stale, fine = answer["results"]
        assert stale["id"] == shown["id"] and not stale["ok"]
        assert "changed since you saw it" in stale["message"] and "rejected by someone" in stale["message"]
        assert stale["status"] == "rejected"
        assert fine["ok"] and fine["status"] == "approved"

        now = _segment(store, shown["id"])
        assert now.status is Status.REJECTED and now.reviewer == "someone"
        assert [(r.reviewer, r.to_status, r.via) for r in store.decisions([shown["id"]])] == [
            ("someone", "rejected", "test")
        ]
        assert _segment(store, other["id"]).status is Status.APPROVED


def test_a_segment_leased_to_another_reviewer_is_left_to_them(server, group):
    with (
        closing(logged_in(server, "alice")) as alice,
        closing(logged_in(server, "bob")) as bob,
        SegmentStore.open(group.db) as store,
    ):
        (hers,) = _next(alice, count=1)
        answer = _decide(bob, (hers["id"], hers["revision"], "rejected"))
        (result,) = answer["results"]
        assert not result["ok"] and "being reviewed by alice" in result["message"]
        assert result["status"] == "unchecked" and result["revision"] == hers["revision"]
        assert _segment(store, hers["id"]).status is Status.UNCHECKED
        assert store.decisions([hers["id"]]) == []
        assert hers["id"] not in {item["id"] for item in _next(bob)}  # nor shown to bob
        assert _decide(alice, (hers["id"], hers["revision"], "rejected"))["results"][0]["ok"]


def test_decisions_reach_only_the_pages_group(server, group):
    make_review_group(group.root, db=group.db, group="other", images=1, seed=5)
    with closing(logged_in(server, "alice")) as alice, SegmentStore.open(group.db) as store:
        foreign = store.segments(group="other")
        assert foreign and not {s.id for s in foreign} & {i["id"] for i in _next(alice, status="any")}
        mine = _next(alice, count=1)[0]
        answer = _decide(
            alice,
            (foreign[0].id, foreign[0].revision, "rejected"),
            (mine["id"], mine["revision"], "rejected"),
        )
        outside, inside = answer["results"]
        assert not outside["ok"] and "not in group test" in outside["message"]
        assert inside["ok"]
        assert (
            _segment(store, foreign[0].id).status is Status.UNCHECKED
            and store.decisions([foreign[0].id]) == []
        )
        assert alice.get(f"/crop/{foreign[0].id}").status_code == 404
        assert alice.get(f"/picture/{foreign[0].image_id}").status_code == 404


# --- the queue -----------------------------------------------------------------------------------


def test_filters_and_orders_choose_the_segments(group):
    with SegmentStore.open(group.db) as store:
        segments = store.segments(group=group.group)
        approved = sorted(s.id for s in segments[:3])
        store.review_segments(SegmentSelection(ids=tuple(approved)), Status.APPROVED, "dan", "test")
        unchecked = [s for s in segments if s.id not in approved]
    by_class: dict[str, set[int]] = {}
    for s in unchecked:
        by_class.setdefault(s.class_name, set()).add(s.id)
    in_range = {s.id for s in unchecked if 0.5 <= s.score <= 0.8}
    assert in_range and len(by_class) > 1

    with ReviewServer(group) as server, closing(logged_in(server, "filterer")) as client:
        for name, ids in by_class.items():
            items = _next(client, class_name=name)
            assert {i["id"] for i in items} == ids and {i["class_name"] for i in items} == {name}
        ranged = _next(client, min_score=0.5, max_score=0.8)
        assert {i["id"] for i in ranged} == in_range and all(0.5 <= i["score"] <= 0.8 for i in ranged)
        assert _next(client, model="no-such-model") == []
        decided = _next(client, status="approved")
        assert sorted(i["id"] for i in decided) == approved and {i["status"] for i in decided} == {"approved"}
        assert len(_next(client, status="any")) == group.segments

        queue = _next(client)
        assert len(queue) == len(unchecked)
        doubts = [i["doubt"] for i in queue]
        assert doubts == sorted(doubts, reverse=True) and doubts[0] > doubts[-1]

    with ReviewServer(group, "--order", "score") as server, closing(logged_in(server, "filterer")) as client:
        scores = [i["score"] for i in _next(client)]
        assert len(scores) == len(unchecked) and scores == sorted(scores) and scores[0] < scores[-1]


# --- pictures ------------------------------------------------------------------------------------


def test_a_badlisted_images_segments_and_picture_are_not_served(server, group):
    with closing(logged_in(server, "alice")) as alice, SegmentStore.open(group.db) as store:
        _next(alice, count=1)  # the queue took its snapshot before the badlisting
        images = sorted(store.images(group=group.group), key=lambda i: i.id)
        banned, kept = images[0], images[1]
        banned_ids = {s.id for s in store.segments(group=group.group) if s.image_id == banned.id}
        kept_ids = {s.id for s in store.segments(group=group.group) if s.image_id == kept.id}
        assert alice.get(f"/crop/{min(banned_ids)}").status_code == 200  # served until badlisted
        assert store.push_badlist([banned.path])[0] == 1

        shown = {i["id"] for i in _next(alice, status="any")}
        assert not shown & banned_ids and kept_ids <= shown
        (late,) = store.segments_by_id([min(banned_ids)], include_badlisted=True)
        (refused,) = _decide(alice, (late.id, late.revision, "approved"))["results"]
        assert not refused["ok"] and "badlisted" in refused["message"]
        (still,) = store.segments_by_id([late.id], include_badlisted=True)
        assert still.status is Status.UNCHECKED and store.decisions([late.id]) == []  # nothing written
        for segment_id in banned_ids:
            assert alice.get(f"/crop/{segment_id}").status_code == 404
        assert alice.get(f"/picture/{banned.id}").status_code == 404
        assert alice.get(f"/api/image/{banned.id}").status_code == 404

        picture = alice.get(f"/picture/{kept.id}")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        assert picture.content == (group.root / "DATA" / "pictures" / kept.path).read_bytes()
        crop = alice.get(f"/crop/{min(kept_ids)}")
        assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"
        assert cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR) is not None


def _raw_get(server: ReviewServer, path: str, cookie: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (httpx would resolve its ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Cookie", f"seg_review={cookie}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _save_image(store: SegmentStore, group: ReviewGroup, name: str, data: bytes) -> int:
    mask = np.zeros((120, 160), np.uint8)
    mask[30:90, 40:120] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    segment = NewSegment(0, "cat", 0.6, (40.0, 30.0, 120.0, 90.0), rle["counts"].decode("ascii"))
    facts = ImageFacts(name, hashlib.sha256(data).hexdigest(), len(data), 160, 120)
    store.save_segmentation(facts, MODEL, "v1", [segment], [group.group])
    (image,) = [i for i in store.images(group=group.group) if i.path == name]
    return image.id


def test_no_path_from_a_request_reaches_the_disk(group):
    pixels = np.full((120, 160, 3), 200, np.uint8)
    data = cv2.imencode(".jpg", pixels)[1].tobytes()
    outside = group.root / "DATA" / "outside.jpg"  # DATA/pictures/../outside.jpg
    outside.write_bytes(data)
    link = group.root / "DATA" / "pictures" / group.group / "link.jpg"
    link.symlink_to(outside)
    with SegmentStore.open(group.db) as store:
        escaping = _save_image(store, group, "../outside.jpg", data)
        linked = _save_image(store, group, f"{group.group}/link.jpg", data)
        by_image = {s.image_id: s.id for s in store.segments(group=group.group)}

    with ReviewServer(group) as server, closing(logged_in(server, "alice")) as alice:
        cookie = alice.cookies["seg_review"]
        for path in (
            "/picture/../../etc/passwd",
            "/picture/..%2F..%2Fetc%2Fpasswd",
            "/crop/../../../etc/passwd",
            "/picture/%2e%2e/outside.jpg",
            "/static/../../../../etc/passwd",
            "/static/..%2F..%2Fapp.py",
        ):
            status, body = _raw_get(server, path, cookie)
            assert status == 404, (path, status)
            assert b"root:" not in body and b"import" not in body
        for path in ("/crop/abc", "/picture/999999", "/crop/999999", "/picture/-1", "/api/image/999999"):
            answer = alice.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith(("application/json", "text/plain"))
        for image_id in (escaping, linked):
            assert alice.get(f"/picture/{image_id}").status_code == 404
            assert alice.get(f"/crop/{by_image[image_id]}").status_code == 404
        served = alice.get(f"/picture/{min(by_image)}")  # the group's own pictures still are
        assert served.status_code == 200 and served.content[:2] == b"\xff\xd8"


def test_requests_are_bounded(tmp_path):
    big = make_review_group(tmp_path, images=41, objects=5, size=(160, 120))
    assert big.segments > EVERYTHING
    with ReviewServer(big) as server, closing(logged_in(server, "alice")) as alice:
        items = _next(alice, count=10_000)
        assert len(items) == EVERYTHING

        too_many = [{"id": i["id"], "revision": i["revision"], "status": "approved"} for i in items]
        too_many.append(too_many[0])
        answer = alice.post("/api/decide", json={"decisions": too_many})
        assert answer.status_code == 400 and "decisions" in answer.json()["error"]
        assert alice.post("/api/decide", json={"decisions": []}).status_code == 400
        assert alice.post("/api/next", json={"exclude": list(range(1001))}).status_code == 400

        padding = "x" * (300 * 1024)
        huge = alice.post("/api/next", json={"count": 1, "padding": padding})
        assert huge.status_code in (400, 413)
        chunked = alice.post(
            "/api/decide", content=iter([b'{"padding": "', padding.encode(), b'"}']),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert chunked.status_code in (400, 413)
        assert alice.post("/api/next", content=b"[1, 2]").status_code == 400
        assert alice.post("/api/next", content=b"{not json").status_code == 400
        with SegmentStore.open(big.db) as store:
            assert {s.status for s in store.segments(group=big.group)} == {Status.UNCHECKED}


# --- the token and the command -------------------------------------------------------------------


def test_off_loopback_the_page_needs_its_token(shared):
    off = ("--group", shared.group, "--host", "0.0.0.0", "--port", "0")
    refused = _serve(shared, *off)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token-env" in lines[0], refused.stderr
    empty = _serve(shared, *off, "--token-env", "NO_SUCH_VAR_X")
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1

    token = "s3cret-" + hashlib.sha256(b"review token").hexdigest()[:24]
    server = ReviewServer(shared, "--token-env", "REVIEW_TOKEN", host="0.0.0.0", env={"REVIEW_TOKEN": token})
    local = SimpleNamespace(url=f"http://127.0.0.1:{server.port}")
    with server, _client(local.url) as anon:
        assert anon.get("/api/counts").status_code == 401
        assert anon.get("/").status_code == 303
        form = anon.get("/login")
        assert 'name="token"' in form.text
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        without = anon.post("/login", data={"csrf": csrf, "reviewer": "eve"})
        assert without.status_code == 400 and "token" in without.text
        wrong = anon.post("/login", data={"csrf": csrf, "reviewer": "eve", "token": token[:-1]})
        assert wrong.status_code == 400
        assert anon.get("/api/counts").status_code == 401
        forged = {"Authorization": f"Bearer {token}x", "X-Reviewer": "eve"}
        assert anon.get("/api/counts", headers=forged).status_code == 401

        with closing(logged_in(local, "carol", token=token)) as carol:
            assert carol.get("/api/counts").json()["total"] == shared.segments
            assert len(_next(carol, count=2)) == 2

        bearer = {"Authorization": f"Bearer {token}"}
        as_robot = {**bearer, "X-Reviewer": "robot"}
        nameless = anon.post("/api/next", json={"count": 1}, headers=bearer)
        assert nameless.status_code == 401 and "X-Reviewer" in nameless.json()["error"]
        robot = anon.post("/api/next", json={"count": 3}, headers=as_robot)
        assert robot.status_code == 200
        ids = [i["id"] for i in robot.json()["items"]]
        assert len(ids) == 3
        with SegmentStore.open(shared.db) as store:
            assert store.lease_holders(ids) == dict.fromkeys(ids, "robot")
        released = anon.post("/api/skip", json={"ids": ids, "remember": False}, headers=as_robot)
        assert released.status_code == 200
        with SegmentStore.open(shared.db) as store:
            assert store.lease_holders(ids) == {}
    log = server.log.read_text()
    assert "review at http://0.0.0.0:" in log
    assert token not in log


def test_an_unknown_group_is_refused_naming_the_groups(shared):
    answer = _serve(shared, "--group", "nosuch", "--port", "0")
    assert answer.returncode == 2
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1, answer.stderr
    assert "'nosuch'" in lines[0] and f"groups: {shared.group}" in lines[0]
    assert answer.stdout == ""


def test_pages_never_show_a_reviewer_the_same_segment_twice(server, group):
    """Within a page's life the server remembers what it showed: a second look at approved
    segments walks through them all, and a page asked for before its decisions arrive does not
    bring them back; a reloaded page (restart) gets back the segments still leased to it."""
    with closing(logged_in(server, "alice")) as alice, SegmentStore.open(group.db) as store:
        ids = sorted(s.id for s in store.segments(group=group.group))
        store.review_segments(SegmentSelection(ids=tuple(ids)), Status.APPROVED, "bob", "test")
        pages = [_next(alice, status="approved", count=5, restart=n == 0) for n in range(len(ids) // 5 + 2)]
        seen = [i["id"] for page in pages for i in page]
        assert sorted(seen) == ids and len(seen) == len(set(seen))
        store.review_segments(SegmentSelection(ids=tuple(ids)), Status.UNCHECKED, "bob", "test")
        first = [i["id"] for i in _next(alice, count=4)]
        assert not {i["id"] for i in _next(alice, count=4, restart=False)} & set(first)  # decisions pending
        assert [i["id"] for i in _next(alice, count=4)][:4] == first  # reloaded: still hers, first


def test_another_site_cannot_use_the_page(shared_server):
    """A page whose name points at 127.0.0.1 (DNS rebinding) is refused by the Host check; a login
    form posted from another site is refused even with no session to compare its CSRF field with;
    a POST the browser marks cross-site is refused even with the session's CSRF token."""
    rebound = httpx.get(f"{shared_server.url}/login", headers={"Host": "attacker.example"}, timeout=10)
    assert rebound.status_code == 400
    with _client(shared_server.url) as anon:
        forged = anon.post("/login", data={"csrf": "", "reviewer": "mallory"})
        assert forged.status_code == 400
        assert anon.get("/api/counts").status_code == 401  # no session was made for mallory
    with closing(logged_in(shared_server, "alice")) as alice:
        cross = alice.post("/api/next", json={"count": 1}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        same = alice.post("/api/next", json={"count": 1}, headers={"Sec-Fetch-Site": "same-origin"})
        assert same.is_success


def test_a_new_token_logs_out_the_sessions_of_the_old_one(shared):
    def serving(token: str) -> ReviewServer:
        env = {"REVIEW_TOKEN": token}
        return ReviewServer(shared, "--token-env", "REVIEW_TOKEN", host="0.0.0.0", env=env)

    first = serving("old-token-0123456789")
    with first:
        local = SimpleNamespace(url=f"http://127.0.0.1:{first.port}")
        client = logged_in(local, "carol", token="old-token-0123456789")
        assert client.get("/api/counts").status_code == 200
        cookies = dict(client.cookies)
    second = serving("new-token-9876543210")
    with second, _client(f"http://127.0.0.1:{second.port}") as again:
        again.cookies.update(cookies)  # the same signing secret: only the token changed
        assert again.get("/api/counts").status_code == 401
