"""The review page in a real headless browser (Debian's chromium through chromium-driver) against a
real ``seg-review serve`` process on a free loopback port, over a real store with real segments:
keyboard review of a page, batch approve, undo, filters, the whole picture, two browsers as two
reviewers, a stale decision refused, and the token off loopback. Each test leaves a screenshot of
every browser it drove in test-results/review/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from store.records import SegmentSelection, Status
from store.segment_store import SegmentStore
from tests.fixtures.browser import start_browser
from tests.fixtures.review_group import make_review_group
from tests.fixtures.review_server import ReviewServer

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "review"
PAGE = 8


@pytest.fixture
def group(tmp_path):
    return make_review_group(tmp_path, images=8, objects=4)  # 32 segments


@pytest.fixture
def server(group):
    with ReviewServer(group, "--page-size", str(PAGE)) as running:
        yield running


@pytest.fixture
def browsers(request):
    """A factory of browsers; each one's screenshot is saved when the test ends, then it quits."""
    opened = []

    def make():
        opened.append(start_browser())
        return opened[-1]

    yield make
    SHOTS.mkdir(parents=True, exist_ok=True)
    for n, browser in enumerate(opened):
        suffix = f"-{n + 1}" if len(opened) > 1 else ""
        try:
            browser.save_screenshot(str(SHOTS / f"{request.node.name}{suffix}.png"))
        finally:
            browser.quit()


def login(browser, url: str, reviewer: str, token: str | None = None) -> None:
    browser.get(url + "/")
    browser.find_element(By.ID, "reviewer-name").send_keys(reviewer)
    if token is not None:
        browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    page_ready(browser)


def page_ready(browser, times: int = 1) -> None:
    WebDriverWait(browser, 20).until(
        lambda b: int(b.execute_script("return document.body.dataset.ready || 0")) >= times
    )
    settled(browser)


def settled(browser) -> None:
    """Every decision sent and answered, the next page prefetched."""
    browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const s = window.segReview.state;
        s.chain.then(() => s.nextLoading).then(() => done(true));"""
    )
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.body.dataset.inflight") == "0"
    )


def press(browser, keys: str) -> None:
    body = browser.find_element(By.TAG_NAME, "body")
    for key in keys:
        body.send_keys(key)
    settled(browser)


def tiles(browser) -> list[dict]:
    return browser.execute_script(
        """return [...document.querySelectorAll('#grid .tile')].map(t => ({
            id: Number(t.dataset.id), status: t.dataset.status || 'unchecked',
            current: t.classList.contains('current'), refused: t.classList.contains('refused'),
            caption: t.querySelector('figcaption').textContent}))"""
    )


def stored(group) -> dict[int, object]:
    with SegmentStore.open(group.db) as store:
        return {s.id: s for s in store.segments(group=group.group)}


def test_keyboard_review_of_a_page(group, server, browsers):
    browser = browsers()
    login(browser, server.url, "alice")
    shown = tiles(browser)
    assert len(shown) == PAGE and shown[0]["current"]
    doubts = [float(t["caption"].rsplit("doubt ", 1)[1]) for t in shown]
    assert doubts == sorted(doubts, reverse=True)  # the most doubtful first
    press(browser, "arsa")
    now = stored(group)
    ids = [t["id"] for t in shown]
    assert [now[i].status for i in ids[:4]] == [
        Status.APPROVED,
        Status.REJECTED,
        Status.UNCHECKED,
        Status.APPROVED,
    ]
    assert {now[i].reviewer for i in (ids[0], ids[1], ids[3])} == {"alice"}
    with SegmentStore.open(group.db) as store:
        trail = store.decisions([ids[0]])
    assert [(d.reviewer, d.from_status, d.to_status, d.via) for d in trail] == [
        ("alice", "unchecked", "approved", "seg-review")
    ]
    after = {t["id"]: t for t in tiles(browser)}
    assert [after[i]["status"] for i in ids[:4]] == ["approved", "rejected", "unchecked", "approved"]
    assert after[ids[4]]["current"]  # the next undecided one
    counts = browser.find_element(By.ID, "counts").text
    assert counts.startswith(f"3 of {group.segments} reviewed")
    width = browser.execute_script("return document.getElementById('progress-bar').style.width")
    assert float(width.rstrip("%")) == pytest.approx(100 * 3 / group.segments, abs=0.1)
    measures = browser.execute_script("return window.segReview.measures()")
    assert sum(m["name"] == "next-segment" for m in measures) == 4


def test_batch_approve_turns_the_page_and_undo_brings_it_back(group, server, browsers):
    browser = browsers()
    login(browser, server.url, "alice")
    first = [t["id"] for t in tiles(browser)]
    press(browser, "A")
    now = stored(group)
    assert all(now[i].status == Status.APPROVED for i in first)
    second = [t["id"] for t in tiles(browser)]
    assert len(second) == PAGE and not set(second) & set(first)
    press(browser, "u")
    now = stored(group)
    assert all(now[i].status == Status.UNCHECKED for i in first)
    back = {t["id"]: t["status"] for t in tiles(browser)}
    assert set(first) <= set(back) and all(back[i] == "unchecked" for i in first)
    with SegmentStore.open(group.db) as store:
        trail = store.decisions([first[0]])
    assert [(d.from_status, d.to_status) for d in trail] == [
        ("unchecked", "approved"),
        ("approved", "unchecked"),
    ]
    assert "undone: 8 decisions" in browser.find_element(By.ID, "message").text


def test_filters_narrow_the_queue(group, server, browsers):
    browser = browsers()
    login(browser, server.url, "alice")
    Select(browser.find_element(By.NAME, "class_name")).select_by_visible_text("cat")
    browser.find_element(By.NAME, "min_score").send_keys("0.5")
    browser.find_element(By.ID, "apply").click()
    page_ready(browser, times=2)
    now = stored(group)
    expected = sorted(i for i, s in now.items() if s.class_name == "cat" and s.score >= 0.5)
    shown = [t["id"] for t in tiles(browser)]
    assert shown and all(now[i].class_name == "cat" and now[i].score >= 0.5 for i in shown)
    assert len(shown) == min(PAGE, len(expected))
    press(browser, "a")
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("approved")
    browser.find_element(By.ID, "apply").click()
    page_ready(browser, times=3)
    assert [t["id"] for t in tiles(browser)] == [shown[0]]  # the one approved


def test_the_whole_picture_with_every_segment_on_a_key(group, server, browsers):
    browser = browsers()
    login(browser, server.url, "alice")
    current = tiles(browser)[0]["id"]
    image = stored(group)[current].image
    of_image = [s for s in stored(group).values() if s.image == image]
    press(browser, "f")
    WebDriverWait(browser, 10).until(
        lambda b: b.execute_script("return window.segReview.measures().some(m => m.name === 'full-view')")
    )
    assert browser.find_element(By.ID, "viewer").is_displayed()
    assert image in browser.find_element(By.ID, "key-title").text
    entries = browser.find_elements(By.CSS_SELECTOR, "#key-list li")
    assert len(entries) == len(of_image)
    polygons = browser.find_elements(By.CSS_SELECTOR, "#overlay polygon")
    assert {int(p.get_attribute("data-id")) for p in polygons} == {s.id for s in of_image}
    assert browser.find_elements(By.CSS_SELECTOR, f'#overlay polygon.current[data-id="{current}"]')
    natural = browser.execute_script(
        "const i = document.getElementById('full'); return [i.naturalWidth, i.naturalHeight]"
    )
    assert natural == [640, 480]  # the picture at full resolution
    press(browser, "\ue00c")  # Escape
    assert not browser.find_element(By.ID, "viewer").is_displayed()


def test_two_reviewers_are_never_shown_the_same_segment(group, server, browsers):
    alice, bob = browsers(), browsers()
    login(alice, server.url, "alice")
    login(bob, server.url, "bob")
    seen = {"alice": set(), "bob": set()}
    for _ in range(4):
        for name, browser in (("alice", alice), ("bob", bob)):
            shown = {t["id"] for t in tiles(browser)}
            seen[name] |= shown
            if shown:
                press(browser, "A")
    assert not seen["alice"] & seen["bob"]
    assert seen["alice"] | seen["bob"] == set(stored(group))
    now = stored(group)
    assert all(s.status == Status.APPROVED for s in now.values())
    assert {now[i].reviewer for i in seen["alice"]} == {"alice"}
    assert {now[i].reviewer for i in seen["bob"]} == {"bob"}
    with SegmentStore.open(group.db) as store:
        assert len(store.decisions(list(now))) == len(now)  # one decision each: nobody decided twice


def test_a_decision_on_a_segment_changed_since_it_was_shown_is_refused(group, server, browsers):
    browser = browsers()
    login(browser, server.url, "alice")
    first = tiles(browser)[0]["id"]
    with SegmentStore.open(group.db) as store:
        store.review_segments(
            SegmentSelection(ids=(first,)), Status.REJECTED, "carol", "seg-client segments review"
        )
    press(browser, "a")
    message = browser.find_element(By.ID, "message").text
    assert f"segment {first} changed since you saw it" in message and "rejected by carol" in message
    tile = next(t for t in tiles(browser) if t["id"] == first)
    assert tile["refused"] and tile["status"] == "rejected"
    now = stored(group)[first]
    assert now.status == Status.REJECTED and now.reviewer == "carol"
    press(browser, "u")  # the refused decision is not in the history: carol's stays
    assert "nothing to undo" in browser.find_element(By.ID, "message").text
    with SegmentStore.open(group.db) as store:
        assert [d.reviewer for d in store.decisions([first])] == ["carol"]
        assert store.segments_by_id([first])[0].status == Status.REJECTED


def test_off_loopback_the_page_asks_for_its_token(group, browsers):
    token = "s3cret-review-token"
    with ReviewServer(
        group, "--token-env", "REVIEW_TOKEN", host="0.0.0.0", env={"REVIEW_TOKEN": token}
    ) as running:
        url = f"http://127.0.0.1:{running.port}"
        browser = browsers()
        browser.get(url + "/")
        browser.find_element(By.ID, "reviewer-name").send_keys("alice")
        browser.find_element(By.ID, "token").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        # the form's answer is a new page: wait for it rather than read the old one
        error = WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.ID, "login-error"))
        assert "not the page's token" in error[0].text
        browser.get(url + "/api/counts")
        assert "log in" in browser.page_source
        login(browser, url, "alice", token=token)
        first = tiles(browser)[0]["id"]
        press(browser, "a")
        assert stored(group)[first].status == Status.APPROVED
    assert token not in running.log.read_text()
    assert os.environ.get("REVIEW_TOKEN") != token  # given to the server only
