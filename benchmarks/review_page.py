"""`make bench-review`: how quickly the review page answers a reviewer's keys, measured in the
browser: a real `seg-review serve` process over a real SQLite segment store, and Debian's headless
chromium (1400×900) driven by Selenium, on one machine.

The group is generated (tests/fixtures/review_group.py): by default 200 JPEG pictures of 4000×3000
(12 megapixels) with 10 drawn ellipses each, one stored segment per ellipse: 2,000 segments. It is
kept under benchmarks/output/review_page/group/ with --keep and reused by a later run with the same
options; every run starts from the generated store (all unchecked, nothing leased) and an empty
crop cache (DATA/review_cache).

What is measured, in the browser, from the performance mark review/static/review.js makes on every
key press:

  1. next segment: from a key press (`a`, every 7th `r`) to the next segment's crop decoded and a
     frame drawn (the page's "next-segment" measure); the keys come at a reviewer's pace (--pause-ms,
     default 250 ms: 4 decisions a second is a fast reviewer) across --decisions decisions (default
     300, a dozen page turns at the default page size of 24). Goal: p95 ≤ 100 ms.
  2. full view: every --full-every decisions (default 20), `f` a pause after the decision, until
     the whole picture at full resolution is painted; then Escape. Goal: p95 ≤ 300 ms. The page's
     own "full-view" measure stops at the frame after the picture decoded, but at the very next
     frame when the picture had been fetched already (ahead of the key), before the browser decodes
     it to paint it; so the time judged is when the browser reports the picture painted (Element
     Timing on the page's #full, set by this benchmark), or the page's measure where that is later.
  3. cold, what the prefetch hides: the first page after login (from the login form's submission,
     the navigation's start, until the page is listed and until all its crops are shown; the
     server cuts them as they are asked for), and --cold-views full views of a picture not fetched
     before (`f` pressed together with the decision, before the page fetches the next segment's
     picture ahead of the key; checked against the browser's resource timing). No goal: reported.
  4. the crop cache: crops on disk under DATA/review_cache against the segments leased (each crop
     is cut once), and when the server cut them (the files' modification times): from the first to
     the last, in bursts (a page's crops, cut in the background when the page is leased), and for
     each leased page from its lease (the browser's /api/next answer) to its last crop on disk.

Prints the figures and PASS/FAIL against the goals (exits 1 when one fails); writes them to
result.json, with the screenshots review-page.png (mid-review) and review-view.png (the full view
with its key), under benchmarks/output/review_page/ (--out, --screenshots).

    python -m benchmarks.review_page [--images N] [--objects N] [--size WxH] [--decisions N]
        [--pause-ms MS] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

from benchmarks.report import cpu_name

GROUP = "bench"
SEED = 3
QUALITY = 90
NEXT_GOAL_MS = 100.0
FULL_GOAL_MS = 300.0
WAIT_S = 60.0  # the longest wait for the page (first page, a full view) before giving up
CROP_NAME = re.compile(r"^(\d+)-[0-9a-f]{12}\.jpg$")
BURST_GAP_S = 0.5  # crops written further apart than this belong to different bursts

# run in every page of the browser before its own scripts (CDP, so the page's CSP does not apply):
# a resource timing buffer for the whole run, the pages /api/next leased (ids, when), the times of
# the grid's renders, and when the first page is listed and its crops shown
PROBE = """
(() => {
  if (location.pathname !== "/") return;
  performance.setResourceTimingBufferSize(1000000);
  const B = window.__bench = {pages: [], renders: [], painted: [], messages: [], ready: null, shown: null};
  // when the whole picture is painted: the page's own "full-view" measure stops at the frame after
  // the picture decoded, or at once when it had been fetched (a picture fetched but not decoded yet
  // is decoded as it is painted), so the benchmark asks the browser when it painted it
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      B.painted.push({url: e.url ? new URL(e.url).pathname : "", at: e.renderTime || e.loadTime,
        loaded: e.loadTime, id: e.identifier});
    }
  }).observe({type: "element", buffered: true});
  const fetched = window.fetch.bind(window);
  window.fetch = async (...args) => {
    const response = await fetched(...args);
    if (String(args[0]).startsWith("/api/next")) {
      const at = performance.now();
      response.clone().json().then((d) => B.pages.push({at, ids: (d.items || []).map((i) => i.id)}),
        () => undefined);
    }
    return response;
  };
  let waiting = false;
  const check = () => {
    const grid = document.getElementById("grid");
    const full = document.getElementById("full");
    if (full && !full.hasAttribute("elementtiming")) full.setAttribute("elementtiming", "full-view");
    const message = document.getElementById("message");
    if (grid && message && !B.observed) {
      B.observed = true;
      new MutationObserver(() => B.renders.push(performance.now())).observe(grid, {childList: true});
      new MutationObserver(() => {
        if (message.textContent) B.messages.push({at: performance.now(), text: message.textContent});
      }).observe(message, {childList: true, characterData: true, subtree: true});
    }
    if (B.shown !== null || waiting || !document.body || !document.body.dataset.ready) return;
    if (B.ready === null) B.ready = performance.now();
    const images = [...document.querySelectorAll("#grid .tile img")];
    if (!images.every((i) => i.complete)) return;
    waiting = true;
    Promise.all(images.map((i) => i.decode().catch(() => undefined))).then(() =>
      requestAnimationFrame(() => { B.shown = performance.now(); }));
  };
  document.addEventListener("load", check, true);
  document.addEventListener("error", check, true);
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-ready"]});
})();
"""

MEASURES = """
const marks = new Map(performance.getEntriesByType("mark").map((m) => [m.startTime, m.name]));
return performance.getEntriesByType("measure").map((m) => ({
  name: m.name, mark: marks.get(m.startTime) || null, start: m.startTime, ms: m.duration}));
"""

RESOURCES = """
return performance.getEntriesByType("resource").map((r) => ({
  url: new URL(r.name).pathname, start: r.startTime, end: r.responseEnd, bytes: r.transferSize}));
"""


# --- the group -------------------------------------------------------------------------------------


def group_options(args: argparse.Namespace) -> dict:
    width, height = args.size
    return {"group": GROUP, "images": args.images, "objects": args.objects, "size": [width, height],
            "seed": SEED, "quality": QUALITY}  # fmt: skip


def generated_group(args: argparse.Namespace, folder: Path):
    """The group under ``folder`` (reused when an earlier run kept one made with the same options),
    its store reset to the generated one and its crop cache emptied; (group, how it was got)."""
    from tests.fixtures.review_group import ReviewGroup, make_review_group

    options = group_options(args)
    made = folder / "group.json"
    pristine = folder / "generated.db"
    db_path = folder / "DATA" / "segments.db"
    facts = json.loads(made.read_text()) if made.is_file() else {}
    if facts.get("options") == options and pristine.is_file():
        how = f"reused from {folder} (generated in {facts['generation_s']:.0f} s)"
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        total = args.images
        width, height = args.size
        print(
            f"generating {total} pictures of {width}×{height} with {args.objects} objects each...", flush=True
        )
        started = time.perf_counter()
        done: list = []

        def generate() -> None:
            try:
                done.append(
                    make_review_group(folder, None, GROUP, total, args.objects, args.size, SEED, QUALITY)
                )
            except BaseException as exc:  # reported by the main thread
                done.append(exc)

        worker = threading.Thread(target=generate, name="generate", daemon=True)
        worker.start()
        pictures = folder / "DATA" / "pictures" / GROUP
        while worker.is_alive():
            worker.join(10)
            count = len(list(pictures.glob("*.jpg"))) if pictures.is_dir() else 0
            if worker.is_alive():
                print(f"  {count}/{total} pictures ({time.perf_counter() - started:.0f} s)", flush=True)
        if isinstance(done[0], BaseException):
            raise done[0]
        took = time.perf_counter() - started
        with sqlite3.connect(db_path) as source, sqlite3.connect(pristine) as copy:
            source.backup(copy)
        facts = {"options": options, "segments": done[0].segments, "generation_s": took}
        made.write_text(json.dumps(facts, indent=1))
        how = f"generated in {took:.0f} s"
        print(f"generated {done[0].segments} segments in {took:.0f} s", flush=True)
    for leftover in (db_path, db_path.with_name("segments.db-wal"), db_path.with_name("segments.db-shm")):
        leftover.unlink(missing_ok=True)
    with sqlite3.connect(pristine) as source, sqlite3.connect(db_path) as copy:
        source.backup(copy)
    shutil.rmtree(folder / "DATA" / "review_cache", ignore_errors=True)
    for log in folder.glob("seg-review-*.log"):
        log.unlink()
    group = ReviewGroup(folder, f"sqlite:///{db_path}", GROUP, args.images, facts["segments"])
    return group, how


# --- the browser -----------------------------------------------------------------------------------


def open_browser(width: int, height: int):
    from tests.fixtures.browser import CHROMIUM, DRIVER, start_browser

    def found(paths: tuple[str, ...], name: str) -> bool:
        return any(Path(p).exists() for p in paths) or shutil.which(name) is not None

    if not (found(CHROMIUM, "chromium") and found(DRIVER, "chromedriver")):
        raise SystemExit("no headless browser (Debian: apt-get install chromium chromium-driver)")
    browser = start_browser(width, height)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
    return browser


def wait_for(what: str, condition, timeout_s: float = WAIT_S, every_s: float = 0.01):
    """``condition()``'s first true value, polled; None after ``timeout_s`` (``what`` is said)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    print(f"  no {what} within {timeout_s:.0f} s", flush=True)
    return None


def count_measures(browser, name: str) -> int:
    script = "return performance.getEntriesByName(arguments[0], 'measure').length"
    return browser.execute_script(script, name)


class Reviewer:
    """The keys of one reviewer, in order, each kept with what it was for (the page makes one mark
    per key press, ``key-1``, ``key-2``, ...; only keys it handles are pressed)."""

    def __init__(self, browser, pause_s: float):
        from selenium.webdriver.common.by import By

        self.browser = browser
        self.body = browser.find_element(By.TAG_NAME, "body")
        self.pause_s = pause_s
        self.pressed: list[tuple[str, str]] = []  # (key, phase)
        self.viewed: dict[str, int] = {}  # the mark of an `f` → the image it showed
        self.next_at = time.monotonic()

    def press(self, keys: str, phase: str, paced: bool = True) -> None:
        """``keys`` in one go (no pause between them), at the reviewer's pace after the last press."""
        if paced:
            time.sleep(max(0.0, self.next_at - time.monotonic()))
        self.body.send_keys(*keys)
        self.pressed += [(key, phase) for key in keys]
        self.next_at = time.monotonic() + self.pause_s

    def rest(self) -> None:
        """Start the pace again from now (after a wait or a screenshot)."""
        self.next_at = time.monotonic() + self.pause_s

    def full_view(self, before_key: str, phase: str, screenshot: Path | None = None) -> bool:
        """``f`` (after ``before_key``, in the same go, when given), waited for until its full-view
        measure; then Escape. Whether it came within the wait."""
        from selenium.webdriver.common.keys import Keys

        seen = count_measures(self.browser, "full-view")
        self.press(before_key + "f", phase, paced=True)
        came = (
            wait_for("full view", lambda: count_measures(self.browser, "full-view") > seen, WAIT_S)
            is not None
        )
        if came:
            viewing = self.browser.execute_script("return window.segReview.state.viewing")
            self.viewed[f"key-{len(self.pressed)}"] = viewing
        if came and screenshot is not None:
            time.sleep(0.3)  # the outlines drawn over it
            self.browser.save_screenshot(str(screenshot))
        self.rest()
        self.press(Keys.ESCAPE, phase)
        return came


def decision_key(n: int) -> str:
    """The n-th decision's key (from 1): a reject every 7th, else approve."""
    return "r" if n % 7 == 0 else "a"


def screenshot_decision(page_size: int, cold: int, decisions: int) -> int:
    """The decision after which the page is shot: on the second page or later, three tiles decided
    (a reject among them, where one comes soon enough) and the fourth current, in the first row."""
    third = [n for n in range(page_size + 1, decisions + 1) if (n + cold) % page_size == 3]
    rejecting = [n for n in third if any(decision_key(k) == "r" for k in range(n - 2, n + 1))]
    return (rejecting or third or [decisions])[0]


def review(browser, url: str, args: argparse.Namespace, shots: Path) -> dict:
    """Log in, wait for the first page, the cold full views, then the paced review; what the page
    recorded (measures with the key each is for, resources, leased pages, renders)."""
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    browser.find_element(By.ID, "reviewer-name").send_keys("bench")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    shown = wait_for(
        "first page", lambda: browser.execute_script("return window.__bench && window.__bench.shown")
    )
    if shown is None:
        raise SystemExit("the first page's crops were not shown: see the server's log")
    first = browser.execute_script("return {ready: window.__bench.ready, shown: window.__bench.shown}")
    viewport = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    print(
        f"first page listed {first['ready']:.0f} ms after login, its crops shown at {first['shown']:.0f} ms"
    )
    reviewer = Reviewer(browser, args.pause_ms / 1000)
    # cold: `f` with the decision, before the page fetches the new segment's picture ahead of the key
    for _ in range(args.cold_views):
        if not reviewer.full_view("a", "cold"):
            break
    print(f"{len(reviewer.viewed)} cold full views; reviewing {args.decisions} decisions...", flush=True)
    started = time.perf_counter()
    page_shot = screenshot_decision(args.page_size, args.cold_views, args.decisions)
    view_shot = True
    for n in range(1, args.decisions + 1):
        reviewer.press(decision_key(n), "warm")
        if n == page_shot:
            browser.execute_script("window.scrollTo(0, 0)")  # the header too (a page turn scrolls it off)
            time.sleep(0.3)  # the decision's frame drawn
            browser.save_screenshot(str(shots / "review-page.png"))
            reviewer.rest()
        if n % args.full_every == 0:
            reviewer.full_view("", "warm", shots / "review-view.png" if view_shot else None)
            view_shot = False
        if n % 50 == 0:
            print(f"  {n}/{args.decisions} decisions ({time.perf_counter() - started:.0f} s)", flush=True)
    time.sleep(1)  # the last frames, the last decisions answered
    measures = browser.execute_script(MEASURES)
    marks = browser.execute_script("return performance.getEntriesByType('mark').length")
    if marks != len(reviewer.pressed):
        raise SystemExit(f"{len(reviewer.pressed)} keys pressed but the page marked {marks}")
    for m in measures:
        n = int(m["mark"].removeprefix("key-")) - 1 if m["mark"] else -1
        m["key"], m["phase"] = reviewer.pressed[n] if 0 <= n < len(reviewer.pressed) else ("?", "?")
        if m["name"] == "full-view":
            m["image_id"] = reviewer.viewed.get(m["mark"])
    return {
        "first": first,
        "viewport": viewport,
        "review_s": time.perf_counter() - started,
        "measures": measures,
        "resources": browser.execute_script(RESOURCES),
        "time_origin_ms": browser.execute_script("return performance.timeOrigin"),
        "pages": browser.execute_script("return window.__bench.pages"),
        "renders": browser.execute_script("return window.__bench.renders"),
        "painted": browser.execute_script("return window.__bench.painted"),
        "messages": browser.execute_script("return window.__bench.messages"),
        "chromium": browser.capabilities.get("browserVersion", "?"),
    }


# --- the figures -----------------------------------------------------------------------------------


def cpu_seconds(pid: int, since: dict[int, float] | None = None) -> dict[int, float] | float:
    """CPU seconds (user and system) of the process ``pid`` and its descendants: pid → seconds;
    with ``since`` (such a dict from earlier), the sum of what each used after it (processes that
    ended in between are left out, those started since count whole)."""
    seconds = {}
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        tree = []
    for process in tree:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system
    if since is None:
        return seconds
    return sum(s - since.get(p, 0.0) for p, s in seconds.items())


def summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    return {
        "count": len(values),
        "median_ms": statistics.median(values),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": max(values),
    }


def full_views(seen: dict) -> list[dict]:
    """Every full view's measure with: whether its picture had been fetched before its key, when the
    browser painted it (element timing) and when its picture had arrived, in ms from the key."""
    views = []
    for view in (m for m in seen["measures"] if m["name"] == "full-view"):
        url = f"/picture/{view.get('image_id')}"
        fetched = [r for r in seen["resources"] if r["url"] == url]
        painted = [
            p["at"] - view["start"] for p in seen["painted"] if p["url"] == url and p["at"] >= view["start"]
        ]
        before = [r for r in fetched if r["start"] <= view["start"] + view["ms"]]
        info = [r for r in seen["resources"] if r["url"] == f"/api/image/{view.get('image_id')}"]
        info = [r for r in info if r["start"] <= view["start"] + view["ms"]]
        views.append(
            {
                **view,
                "picture_fetched_before": any(r["start"] < view["start"] for r in fetched),
                "painted_ms": min(painted) if painted else None,
                # the last requests of the picture and of its outlines before it was shown (ms from the key)
                "picture_asked_ms": before[-1]["start"] - view["start"] if before else None,
                "picture_arrived_ms": before[-1]["end"] - view["start"] if before else None,
                "info_asked_ms": info[-1]["start"] - view["start"] if info else None,
                "info_arrived_ms": info[-1]["end"] - view["start"] if info else None,
                "shown_ms": max(view["ms"], min(painted)) if painted else view["ms"],
            }
        )
    return views


def crop_cache(cache: Path, seen: dict) -> dict:
    """The crops on disk, their bursts of cutting, and each leased page's lease → last crop."""
    written: dict[int, float] = {}
    size = 0
    for path in cache.rglob("*.jpg") if cache.is_dir() else ():
        found = CROP_NAME.match(path.name)
        if found:
            facts = path.stat()
            written[int(found.group(1))] = facts.st_mtime
            size += facts.st_size
    times = sorted(written.values())
    bursts: list[list[float]] = []
    for t in times:
        if bursts and t - bursts[-1][-1] <= BURST_GAP_S:
            bursts[-1].append(t)
        else:
            bursts.append([t])
    busy = sum(b[-1] - b[0] for b in bursts)
    leased = [i for page in seen["pages"] for i in page["ids"]]
    lag = []
    for page in seen["pages"]:
        cut = [written[i] for i in page["ids"] if i in written]
        if cut and len(cut) == len(page["ids"]):
            lag.append(1000 * max(cut) - (seen["time_origin_ms"] + page["at"]))
    crops = [r for r in seen["resources"] if r["url"].startswith("/crop/")]
    return {
        "crops": len(written),
        "bytes": size,
        "segments_leased": len(set(leased)),
        "leased_not_cut": len(set(leased) - set(written)),
        "cut_not_leased": len(set(written) - set(leased)),
        "span_s": times[-1] - times[0] if times else 0.0,
        "bursts": len(bursts),
        "busy_s": busy,
        "crops_per_busy_s": (len(times) - len(bursts)) / busy if busy else None,
        "pages": len(seen["pages"]),
        "lease_to_last_crop": summary(lag),
        "browser_crop_requests": len(crops),
        "browser_crop_urls": len({r["url"] for r in crops}),
    }


def figures(seen: dict, cache: Path) -> dict:
    measures = seen["measures"]
    warm_next = [m for m in measures if m["name"] == "next-segment" and m["phase"] == "warm"]
    turns = []
    for m in warm_next:
        if any(m["start"] <= r <= m["start"] + m["ms"] for r in seen["renders"]):
            turns.append(m["ms"])
    views = full_views(seen)
    warm = [v for v in views if v["phase"] == "warm"]
    cold = [v for v in views if v["phase"] == "cold" and not v["picture_fetched_before"]]
    return {
        "next_segment": summary([m["ms"] for m in warm_next]),
        "next_segment_page_turns": summary(turns),
        "full_view_measure": summary([v["ms"] for v in warm]),
        "full_view": summary([v["shown_ms"] for v in warm]),
        "first_page": {"listed_ms": seen["first"]["ready"], "crops_shown_ms": seen["first"]["shown"]},
        "cold_full_view_measure": summary([v["ms"] for v in cold]),
        "cold_full_view": summary([v["shown_ms"] for v in cold]),
        "full_views": views,
        "cache": crop_cache(cache, seen),
        # what the page said to the reviewer (a refused decision, an error): nothing, in a clean run
        "messages": sorted({m["text"] for m in seen["messages"]}),
    }


def verdicts(f: dict, decisions: int, wanted_full: int) -> dict[str, bool]:
    nxt, full = f["next_segment"], f["full_view"]
    return {
        "next_segment": nxt["count"] >= decisions and nxt["p95_ms"] <= NEXT_GOAL_MS,
        "full_view": full["count"] >= wanted_full and full["p95_ms"] <= FULL_GOAL_MS,
        "cut_once": f["cache"]["leased_not_cut"] == 0 and f["cache"]["cut_not_leased"] == 0,
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def render(r: dict) -> str:
    f, ok = r["figures"], r["verdicts"]
    opts = r["options"]
    width, height = opts["size"]

    def row(label: str, s: dict, goal: str, verdict: str) -> str:
        return (
            f"| {label} | {s['count']} | {_ms(s['median_ms'])} | {_ms(s['p95_ms'])} | {_ms(s['max_ms'])} | "
            f"{goal} | {verdict} |"
        )

    def passed(key: str) -> str:
        return "PASS" if ok[key] else "FAIL"

    c, first = f["cache"], f["first_page"]
    lag = c["lease_to_last_crop"]
    cold_views = [v for v in f["full_views"] if v["phase"] == "cold"]
    fetched_before = sum(v["picture_fetched_before"] for v in cold_views)
    unpainted = sum(v["painted_ms"] is None for v in f["full_views"])
    lines = [
        f"{r['segments']} segments on {opts['images']} pictures of {width}×{height} "
        f"({width * height / 1e6:.0f} MP, {opts['objects']} objects each; group {r['group_how']}); "
        f"`seg-review serve` with pages of {opts['page_size']}; chromium {r['chromium']} headless, "
        f"viewport {r['viewport'][0]}×{r['viewport'][1]}; a key every {opts['pause_ms']} ms, `f` every "
        f"{opts['full_every']} decisions. Machine: {r['machine']}; 1-minute load average "
        f"{r['load_average'][0]:.1f} at the start, {r['load_average'][1]:.1f} at the end.",
        "",
        "| | count | median ms | p95 ms | max ms | goal | |",
        "|---|---|---|---|---|---|---|",
        row(
            "next segment (`a`, `r`)",
            f["next_segment"],
            f"p95 ≤ {NEXT_GOAL_MS:.0f} ms",
            passed("next_segment"),
        ),
        row("… of which page turns", f["next_segment_page_turns"], "", ""),
        row(
            "full view (`f` a pause after the decision), painted",
            f["full_view"],
            f"p95 ≤ {FULL_GOAL_MS:.0f} ms",
            passed("full_view"),
        ),
        row("… the page's own full-view measure", f["full_view_measure"], "", ""),
        row("cold: full view, picture not fetched before, painted", f["cold_full_view"], "", "not a goal"),
        row("… the page's own full-view measure", f["cold_full_view_measure"], "", ""),
        f"| cold: first page after login, listed | 1 | {_ms(first['listed_ms'])} | | | | not a goal |",
        f"| cold: first page, its crops shown | 1 | {_ms(first['crops_shown_ms'])} | | | | not a goal |",
        "",
        f"Crops cached under DATA/review_cache: {c['crops']} ({c['bytes'] / 2**20:.1f} MiB) for the "
        f"{c['segments_leased']} segments leased in {c['pages']} pages ({c['leased_not_cut']} leased "
        f"without a crop, {c['cut_not_leased']} cut without a lease: {passed('cut_once')}); the browser "
        f"asked for {c['browser_crop_requests']} crops ({c['browser_crop_urls']} distinct).",
        f"The server cut them from {c['span_s']:.1f} s of the run, in {c['bursts']} bursts that took "
        f"{c['busy_s']:.1f} s together ({_ms(c['crops_per_busy_s'])} crops/s in a burst); from a page's "
        f"lease to its last crop on disk: median {_ms(lag['median_ms'])} ms, max {_ms(lag['max_ms'])} ms "
        f"(a page is reviewed in {opts['page_size'] * opts['pause_ms'] / 1000:.0f} s at this pace).",
        f"CPU from login to the last key ({r['session_s']:.0f} s on {r['cpus']} cores): the server "
        f"{r['cpu_s']['server']:.1f} s, chromium {r['cpu_s']['chromium']:.1f} s.",
    ]
    said = f["messages"]
    lines.append(
        f"The page said {len(said)} things to the reviewer" + (": " + " / ".join(said[:3]) if said else ".")
    )
    lines.append(
        "A full view's *painted* time is when the browser painted the picture (Element Timing on the "
        "page's #full), or the page's own measure where that is later; the page's measure stops at the "
        "frame after the picture decoded, or at the next frame when the picture had already been "
        "fetched, before it is decoded for the paint."
    )
    if unpainted:
        lines.append(
            f"{unpainted} full views had no paint of their own (a picture shown before): the measure counts."
        )
    if fetched_before:
        lines.append(f"{fetched_before} of the cold full views found their picture fetched before: left out.")
    lines.append(
        f"Verdict: next segment {passed('next_segment')}, full view {passed('full_view')}, "
        f"crops cut once {passed('cut_once')}."
    )
    return "\n".join(lines) + "\n"


# --- the run ---------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict:
    from tests.fixtures.review_server import ReviewServer

    load_before = os.getloadavg()[0]
    out = args.out.resolve()
    shots = args.screenshots.resolve()
    shots.mkdir(parents=True, exist_ok=True)
    folder = out / "group"
    group, how = generated_group(args, folder)
    try:
        with ExitStack() as stack:
            server = stack.enter_context(ReviewServer(group, "--page-size", str(args.page_size)))
            print(
                f"seg-review on {server.url} (pid {server.process.pid}), {group.segments} segments",
                flush=True,
            )
            browser = open_browser(1400, 900)
            stack.callback(browser.quit)
            trees = {"server": server.process.pid, "chromium": browser.service.process.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in trees.items()}
            session = time.perf_counter()
            seen = review(browser, server.url, args, shots)
            seen["session_s"] = time.perf_counter() - session
            cpu = {name: cpu_seconds(pid, cpu_before[name]) for name, pid in trees.items()}
        shutil.copyfile(server.log, out / "seg-review.log")  # the group may go
        found = figures(seen, folder / "DATA" / "review_cache")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    wanted_full = args.decisions // args.full_every
    memory_gib = psutil.virtual_memory().total / 2**30
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m benchmarks.review_page", *sys.argv[1:]]),
        "options": {
            **group_options(args),
            "decisions": args.decisions,
            "pause_ms": args.pause_ms,
            "page_size": args.page_size,
            "full_every": args.full_every,
            "cold_views": args.cold_views,
        },
        "segments": group.segments,
        "group_how": how,
        "group_kept": str(folder) if args.keep else None,
        "cpus": psutil.cpu_count(),
        "machine": f"{psutil.cpu_count()} CPU ({cpu_name()}), {memory_gib:.0f} GiB",
        "load_average": [load_before, os.getloadavg()[0]],
        "chromium": seen["chromium"],
        "viewport": seen["viewport"],
        "review_s": seen["review_s"],
        "session_s": seen["session_s"],
        "cpu_s": cpu,
        "goals_ms": {"next_segment_p95": NEXT_GOAL_MS, "full_view_p95": FULL_GOAL_MS},
        "figures": found,
        "verdicts": verdicts(found, args.decisions, wanted_full),
        "screenshots": [str(shots / "review-page.png"), str(shots / "review-view.png")],
        "measures": seen["measures"],
        "pages": seen["pages"],
    }


def size(text: str) -> tuple[int, int]:
    found = re.fullmatch(r"(\d+)[x×](\d+)", text.strip())
    if not found or min(int(found.group(1)), int(found.group(2))) < 64:
        raise argparse.ArgumentTypeError(f"WIDTHxHEIGHT, 64 pixels a side at least, not {text!r}")
    return int(found.group(1)), int(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    out = Path("benchmarks/output/review_page")
    parser.add_argument("--images", type=int, default=200, help="generated pictures (default 200)")
    parser.add_argument("--objects", type=int, default=10, help="objects (segments) a picture (default 10)")
    parser.add_argument(
        "--size", type=size, default=(4000, 3000), help="pictures' WIDTHxHEIGHT (default 4000x3000)"
    )
    parser.add_argument(
        "--decisions", type=int, default=300, help="decisions at the reviewer's pace (default 300)"
    )
    parser.add_argument("--pause-ms", type=int, default=250, help="between a reviewer's keys (default 250)")
    parser.add_argument("--page-size", type=int, default=24, help="the server's --page-size (default 24)")
    parser.add_argument("--full-every", type=int, default=20, help="`f` after every N decisions (default 20)")
    parser.add_argument("--cold-views", type=int, default=3, help="full views of pictures not fetched before")
    parser.add_argument("--out", type=Path, default=out, help=f"result.json and the group (default {out})")
    parser.add_argument("--screenshots", type=Path, help="where the two PNGs go (default: --out)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated group under --out/group for the next run"
    )
    args = parser.parse_args()
    args.screenshots = args.screenshots or args.out
    if (
        min(args.images, args.objects, args.decisions, args.page_size, args.full_every) < 1
        or args.pause_ms < 0
    ):
        parser.error("--images, --objects, --decisions, --page-size and --full-every are 1 at least")
    if args.images * args.objects < args.decisions + args.cold_views + 2 * args.page_size:
        parser.error("fewer segments than the decisions (and two pages) need: more --images or --objects")
    # SIGTERM unwinds like Ctrl-C: the finally blocks quit the browser and stop the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    try:
        results = measure(args)
    except KeyboardInterrupt:
        sys.exit("interrupted: the browser and the server it started are stopped")
    results["wall_s"] = time.perf_counter() - started
    table = render(results)
    results["markdown"] = table
    out_dir = args.out.resolve()
    (out_dir / "result.json").write_text(json.dumps(results, indent=1))
    print()
    print(table)
    print(f"screenshots: {', '.join(results['screenshots'])}")
    kept = f"; the group is kept in {results['group_kept']}" if results["group_kept"] else ""
    print(f"wrote {out_dir / 'result.json'} ({results['wall_s']:.0f} s in all{kept})")
    if not all(results["verdicts"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
