// seg-review: keyboard review of leased segments. Plain JavaScript, no build step.
//
// The page holds one page of segments leased to this reviewer and, prefetched behind it, the next
// page (its crops already decoded), so a key press never waits for the server: decisions are shown
// at once and sent in order; a refusal (the segment changed since it was shown) puts the tile back
// and says why. Timings are left as performance measures: "next-segment" (key press to the next
// segment on screen) and "full-view" (key press to the whole picture on screen).
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const pageSize = Number(document.querySelector('meta[name="page-size"]').content) || 24;
  const grid = document.getElementById("grid");
  const message = document.getElementById("message");
  const viewer = document.getElementById("viewer");
  const full = document.getElementById("full");
  const overlay = document.getElementById("overlay");
  const COLOURS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
    "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3"];

  const S = {
    page: [], // items: {id, revision, status, ..., el, skipped, decided}
    cursor: 0,
    next: null, // the prefetched page (items), or null
    nextLoading: null, // its promise
    history: [], // [{items: [item], before: [{status}]}], newest last
    chain: Promise.resolve(), // decisions are sent one after another
    inflight: 0,
    filter: {},
    images: new Map(), // image id → its info (segments and outlines)
    viewing: null, // the image id shown full size
    keySeq: 0,
  };

  // --- the server -------------------------------------------------------------------------------

  async function api(path, body) {
    S.inflight += 1;
    document.body.dataset.inflight = String(S.inflight);
    try {
      const response = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? {} : {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        keepalive: body !== undefined, // a decision sent as the tab closes still arrives
      });
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) {
        window.location.assign("/login");
      }
      if (!response.ok) {
        throw new Error(data.error || `${path}: HTTP ${response.status}`);
      }
      return data;
    } finally {
      S.inflight -= 1;
      document.body.dataset.inflight = String(S.inflight);
    }
  }

  function say(text) {
    message.textContent = text;
  }

  function showCounts(counts) {
    if (!counts) return;
    document.getElementById("counts").textContent =
      `${counts.reviewed} of ${counts.total} reviewed · ${counts.unchecked} unchecked · ` +
      `${counts.approved} approved · ${counts.rejected} rejected`;
    const share = counts.total ? (100 * counts.reviewed) / counts.total : 0;
    document.getElementById("progress-bar").style.width = `${share.toFixed(1)}%`;
  }

  function held() {
    return S.page.map((i) => i.id).concat((S.next || []).map((i) => i.id));
  }

  // restart: this page was just loaded (or its filters changed): the server forgets what it showed
  // this reviewer before, so the segments still leased to them come back first
  async function fetchPage(exclude, restart = false) {
    const data = await api("/api/next", {...S.filter, exclude, count: pageSize, restart});
    // stored: the status the store last confirmed (what a decision not recorded goes back to)
    return data.items.map((item) => ({...item, stored: item.status, decided: false, skipped: false}));
  }

  function preload(items) {
    return Promise.all(items.map((item) => {
      const img = new Image();
      img.src = item.crop;
      item.preloaded = img;
      return img.decode().catch(() => undefined);
    }));
  }

  function prefetch() {
    if (S.next || S.nextLoading) return S.nextLoading;
    S.nextLoading = fetchPage(held())
      .then(async (items) => {
        await preload(items);
        S.next = items.length ? items : null; // none now: asked again at the page's end
        return items;
      })
      .catch((error) => {
        say(error.message);
        S.next = null;
      })
      .finally(() => {
        S.nextLoading = null;
      });
    return S.nextLoading;
  }

  // --- drawing ----------------------------------------------------------------------------------

  function tile(item) {
    const el = document.createElement("figure");
    el.className = "tile";
    el.dataset.id = String(item.id);
    const img = item.preloaded || new Image();
    if (!item.preloaded) img.src = item.crop;
    img.alt = `${item.class_name} ${item.score}`;
    img.draggable = false;
    const caption = document.createElement("figcaption");
    const what = document.createElement("span");
    what.textContent = `${item.class_name} · ${item.score.toFixed(2)}`;
    const doubt = document.createElement("span");
    doubt.textContent = `doubt ${item.doubt.toFixed(2)}`;
    caption.append(what, doubt);
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = item.reasons.join("; ");
    why.title = `${item.image} · ${item.model} · segment ${item.id}`;
    const badge = document.createElement("span");
    badge.className = "badge";
    el.append(img, badge, caption, why);
    el.addEventListener("click", () => {
      S.cursor = S.page.indexOf(item);
      drawCursor();
    });
    item.el = el;
    paint(item);
    return el;
  }

  function paint(item) {
    if (!item.el) return;
    if (item.status === "unchecked") delete item.el.dataset.status;
    else item.el.dataset.status = item.status;
    item.el.querySelector(".badge").textContent = item.status === "unchecked" ? "" : item.status;
    item.el.classList.toggle("skipped", item.skipped);
  }

  function render() {
    grid.replaceChildren(...S.page.map(tile));
    document.getElementById("empty").hidden = S.page.length > 0;
    S.cursor = Math.min(S.cursor, Math.max(0, S.page.length - 1));
    drawCursor();
  }

  function current() {
    return S.page[S.cursor];
  }

  function drawCursor() {
    for (const item of S.page) item.el.classList.toggle("current", item === current());
    const item = current();
    if (item) {
      item.el.scrollIntoView({block: "nearest"});
      warmImage(item.image_id);
    }
  }

  // the picture and outlines of the current segment's image, fetched ahead of the key that shows them
  let warmTimer = null;
  function warmImage(imageId) {
    clearTimeout(warmTimer);
    warmTimer = setTimeout(() => {
      imageInfo(imageId).then((info) => {
        const img = new Image();
        img.src = info.picture;
        S.warmPicture = img; // held, decoded ahead: the full view paints without decoding it again
        return img.decode();
      }).catch(() => undefined);
    }, 120);
  }

  function imageInfo(imageId) {
    if (!S.images.has(imageId)) {
      const loading = api(`/api/image/${imageId}`).catch((error) => {
        S.images.delete(imageId);
        throw error;
      });
      S.images.set(imageId, loading);
    }
    return S.images.get(imageId);
  }

  // from the key press to the picture decoded and the frame that shows it painted: "next-segment"
  // (the new current segment's crop) and "full-view" (the whole picture)
  function measureFrom(markName, measureName, img) {
    if (!markName) return;
    const done = () => requestAnimationFrame(() => {
      performance.measure(measureName, markName);
    });
    if (img) img.decode().then(done, done);
    else done();
  }

  // --- decisions --------------------------------------------------------------------------------

  function send(items, statusOf) {
    // statusOf(item) is read when it is this request's turn, with the revision the last answer gave
    S.chain = S.chain.then(async () => {
      const decisions = items.map((item) => ({id: item.id, revision: item.revision, status: statusOf(item)}));
      let data;
      try {
        data = await api("/api/decide", {decisions});
      } catch (error) {
        // not recorded: the tiles go back to what the store holds, open to decide again
        for (const item of items) {
          item.status = item.stored;
          item.decided = item.status !== "unchecked";
          if (item.el) item.el.classList.add("refused");
          paint(item);
        }
        forget(items);
        say(`not recorded (${error.message}): decide again`);
        return;
      }
      const refused = [];
      for (const result of data.results) {
        const item = items.find((i) => i.id === result.id);
        if (!item) continue;
        if (result.revision !== undefined) item.revision = result.revision;
        if (result.status !== undefined) item.status = result.status;
        item.stored = item.status;
        item.decided = item.status !== "unchecked";
        if (!result.ok) {
          refused.push(result.message);
          item.refused = true;
          if (item.el) item.el.classList.add("refused");
          forget([item]); // undo must not turn someone else's decision back
        } else if (item.el) {
          item.el.classList.remove("refused");
        }
        paint(item);
      }
      if (refused.length) say(refused.join(" · "));
      showCounts(data.counts);
    }).catch((error) => say(error.message)); // one broken answer must not stop the decisions after it
    return S.chain;
  }

  // take items out of the undo history (their decision was refused or not recorded)
  function forget(items) {
    for (const entry of S.history) {
      const keep = entry.items.map((item, n) => [item, entry.before[n]]).filter(([item]) => !items.includes(item));
      entry.items = keep.map(([item]) => item);
      entry.before = keep.map(([, before]) => before);
    }
    S.history = S.history.filter((entry) => entry.items.length);
  }

  function decideCurrent(status, markName) {
    const item = current();
    if (!item) return;
    S.history.push({items: [item], before: [item.status]});
    item.status = status;
    item.decided = status !== "unchecked";
    item.skipped = false;
    paint(item);
    send([item], () => status);
    advance(markName);
  }

  function skipCurrent(markName) {
    const item = current();
    if (!item) return;
    item.skipped = true;
    paint(item);
    api("/api/skip", {ids: [item.id]}).catch((error) => say(error.message));
    advance(markName);
  }

  function approvePage(markName) {
    const open = S.page.filter((i) => !i.decided && !i.skipped);
    if (!open.length) return;
    S.history.push({items: open, before: open.map((i) => i.status)});
    for (const item of open) {
      item.status = "approved";
      item.decided = true;
      paint(item);
    }
    send(open, () => "approved");
    turnPage(markName);
  }

  function undo(markName) {
    const last = S.history.pop();
    if (!last) {
      say("nothing to undo");
      return;
    }
    const back = new Map(last.items.map((item, n) => [item, last.before[n]]));
    const missing = last.items.filter((item) => !S.page.includes(item));
    if (missing.length) {
      S.page = missing.concat(S.page);
      render();
    }
    for (const [item, status] of back) {
      item.status = status;
      item.decided = status !== "unchecked";
      item.refused = false;
      paint(item);
    }
    send(last.items, (item) => back.get(item));
    S.cursor = S.page.indexOf(last.items[0]);
    drawCursor();
    measureFrom(markName, "next-segment", current() && current().el.querySelector("img"));
    say(`undone: ${last.items.length} decision${last.items.length > 1 ? "s" : ""}`);
  }

  function open(item) {
    return !item.decided && !item.skipped;
  }

  function advance(markName) {
    for (let n = S.cursor + 1; n < S.page.length; n += 1) {
      if (open(S.page[n])) {
        S.cursor = n;
        drawCursor();
        measureFrom(markName, "next-segment", current().el.querySelector("img"));
        return;
      }
    }
    const earlier = S.page.findIndex(open);
    if (earlier >= 0) {
      S.cursor = earlier;
      drawCursor();
      measureFrom(markName, "next-segment", current().el.querySelector("img"));
      return;
    }
    turnPage(markName);
  }

  async function turnPage(markName) {
    if (!S.next) await prefetch();
    // the decisions of the page leave with it: undo still finds them in the history
    S.page = S.next || [];
    S.next = null;
    S.cursor = 0;
    render();
    if (S.page.length) {
      measureFrom(markName, "next-segment", current().el.querySelector("img"));
      prefetch();
    } else {
      say("Nothing left to review with these filters (looking again every 10 s).");
      waitForWork();
    }
  }

  // an empty page asks again now and then: other reviewers' leases run out, new segments arrive
  let waiting = null;
  function waitForWork() {
    if (waiting) return;
    waiting = setTimeout(async () => {
      waiting = null;
      if (S.page.length) return;
      await S.chain;
      await prefetch();
      if (S.next && !S.page.length) turnPage(null);
      else if (!S.page.length) waitForWork();
    }, 10000);
  }

  // the leases of the segments this page holds, renewed while it is open
  setInterval(() => {
    const ids = S.page.filter(open).map((i) => i.id).concat((S.next || []).map((i) => i.id));
    if (ids.length) api("/api/renew", {ids}).catch(() => undefined);
  }, 60000);

  window.addEventListener("beforeunload", (event) => {
    if (S.inflight > 0) event.preventDefault(); // decisions still on their way
  });

  // --- the whole picture ------------------------------------------------------------------------

  async function showImage(markName) {
    const item = current();
    if (!item) return;
    let info;
    try {
      info = await imageInfo(item.image_id);
    } catch (error) {
      say(error.message);
      return;
    }
    S.viewing = item.image_id;
    overlay.setAttribute("viewBox", `0 0 ${info.width} ${info.height}`);
    overlay.setAttribute("preserveAspectRatio", "none");
    const polygons = [];
    const entries = [];
    info.segments.forEach((segment, n) => {
      const colour = COLOURS[n % COLOURS.length];
      const isCurrent = segment.id === item.id;
      for (const outline of segment.outlines) {
        const polygon = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
        const points = [];
        for (let k = 0; k + 1 < outline.length; k += 2) points.push(`${outline[k]},${outline[k + 1]}`);
        polygon.setAttribute("points", points.join(" "));
        polygon.setAttribute("fill", colour);
        polygon.setAttribute("stroke", colour);
        polygon.dataset.id = String(segment.id);
        if (isCurrent) polygon.classList.add("current");
        polygons.push(polygon);
      }
      const li = document.createElement("li");
      li.dataset.id = String(segment.id);
      if (isCurrent) li.className = "current";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour;
      const known = S.page.find((i) => i.id === segment.id);
      const status = known ? known.status : segment.status;
      li.append(swatch, `${segment.class_name} ${segment.score.toFixed(2)} · ${status}`);
      entries.push(li);
    });
    overlay.replaceChildren(...polygons);
    document.getElementById("key-title").textContent = `${info.image} (${info.width}×${info.height})`;
    document.getElementById("key-list").replaceChildren(...entries);
    full.src = info.picture;
    viewer.hidden = false;
    measureFrom(markName, "full-view", full);
  }

  function closeImage() {
    viewer.hidden = true;
    S.viewing = null;
  }

  // --- keys and filters -------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.target.closest && event.target.closest("#filters")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const markName = `key-${(S.keySeq += 1)}`;
    performance.mark(markName);
    const key = event.key;
    if (key === "Escape") {
      closeImage();
    } else if (key === "f" || key === "Enter") {
      if (viewer.hidden) showImage(markName);
      else closeImage();
    } else if (key === "A") {
      approvePage(markName);
    } else if (key === "a") {
      decideCurrent("approved", markName);
    } else if (key === "r" || key === "x") {
      decideCurrent("rejected", markName);
    } else if (key === "s") {
      skipCurrent(markName);
    } else if (key === "u" || key === "z" || key === "Backspace") {
      undo(markName);
    } else if (key === "ArrowRight" || key === "j") {
      S.cursor = Math.min(S.page.length - 1, S.cursor + 1);
      drawCursor();
    } else if (key === "ArrowLeft" || key === "k") {
      S.cursor = Math.max(0, S.cursor - 1);
      drawCursor();
    } else {
      return;
    }
    event.preventDefault();
    if (!viewer.hidden && key !== "f" && key !== "Enter" && key !== "Escape" && current()
        && current().image_id !== S.viewing) {
      closeImage();
    }
  });

  document.getElementById("filters").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    S.filter = Object.fromEntries([...form.entries()].filter(([, value]) => value !== ""));
    await S.nextLoading;
    await S.chain;
    const leased = held();
    S.page = [];
    S.next = null;
    if (leased.length) await api("/api/skip", {ids: leased, remember: false}).catch(() => undefined);
    await start();
    document.activeElement.blur();
  });

  async function start() {
    say("");
    try {
      S.page = await fetchPage([], true);
    } catch (error) {
      say(error.message);
      S.page = [];
    }
    S.cursor = 0;
    render();
    document.body.dataset.ready = String(Number(document.body.dataset.ready || 0) + 1);
    if (S.page.length) prefetch();
    else waitForWork();
  }

  window.segReview = {
    state: S,
    measures: () => performance.getEntriesByType("measure").map((m) => ({name: m.name, ms: m.duration})),
  };

  api("/api/counts").then(showCounts).catch((error) => say(error.message));
  start();
})();
