"""How many label errors the first 10 % of the review queue holds, ordered by ``review.doubt.rank``
(``uncertainty``), by score alone (``score``) and at random (the mean over 200 permutations).

The group is generated, stored in a real SQLite segment store in a temporary folder, read back and
ranked as the review page ranks it; the classifier's results go through JSON files like those
``seg-client meta build`` writes. The noise model simulates a detector and a classifier, not the
ranking's terms:

- scenes: 640×480, 1 + Poisson(6) objects each, ellipses of random size (semi-axes 15 to 80 px),
  angle and place (so objects of different classes occlude each other), of 6 classes;
- the detector finds each object with probability 0.9, its mask the object's ellipse with its
  centre, semi-axes and angle jittered (a few pixels, a few degrees). Errors, as annotators find
  them:
  (a) wrong class: 5 % of detections get another class than the object's; 40 % of those also
      come out under the true class (a second, overlapping detection, which is correct);
  (b) not an object: Poisson(0.25) blobs per scene (2 to 4 small overlapping ellipses) on the
      background, of a random class;
- scores: correct ~ Beta(4, 2) (mean 0.67), wrong class ~ Beta(3, 2.5) (0.55), blobs ~ Beta(2.5, 3)
  (0.45); detections under the threshold 0.25 are dropped, as the detector's ``--conf`` drops them,
  and ``rank`` is given that threshold;
- classifier: run on 60 % of the segments, on the object the mask covers: its class probabilities
  ~ Dirichlet(0.5 each, +5 on the object's class) for a correct detection, Dirichlet(0.5 each, +3.5 on
  the object's class, +2 on the wrongly detected one) for a wrong class (the classes the detector
  confused look alike), Dirichlet(1 each) for a blob (background is no class).

    python -m benchmarks.review_doubt [--images N] [--seed S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from review.doubt import Order, rank, read_classifier_margins
from store.records import ImageFacts, NewSegment
from store.segment_store import SegmentStore

WIDTH, HEIGHT = 640, 480
CLASSES = ("cat", "dog", "car", "person", "bike", "tree")
MODEL, CLASSIFIER, GROUP = "seg", "cls", "bench"
THRESHOLD = 0.25
DETECTED = 0.9
WRONG_CLASS = 0.05
ALSO_TRUE_CLASS = 0.4
BLOBS_PER_IMAGE = 0.25
CLASSIFIED = 0.6
HEAD = 0.1  # the share of the queue counted
PERMUTATIONS = 200


@dataclass(frozen=True)
class Detection:
    segment: NewSegment
    object_class: int | None  # what the mask covers: None for a blob on the background
    error: str | None  # None, "wrong class" or "blob"


def _rle(mask: np.ndarray) -> tuple[str, tuple[float, float, float, float]]:
    rle = mask_utils.encode(np.asfortranarray(mask))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return rle["counts"].decode("ascii"), (x, y, x + w, y + h)


def _ellipse(centre: tuple[float, float], axes: tuple[float, float], angle: float) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    c = (round(centre[0]), round(centre[1]))
    cv2.ellipse(mask, c, (max(2, round(axes[0])), max(2, round(axes[1]))), angle, 0, 360, 1, -1)
    return mask


def _detected_mask(obj: tuple, rng: np.random.Generator) -> np.ndarray:
    """The object's ellipse as a detector outlines it: centre, semi-axes and angle a little off."""
    (cx, cy), (a, b), angle = obj
    return _ellipse(
        (cx + rng.normal(0, 2.5), cy + rng.normal(0, 2.5)),
        (a * rng.uniform(0.88, 1.1), b * rng.uniform(0.88, 1.1)),
        angle + rng.normal(0, 5),
    )


def _blob(objects: list, rng: np.random.Generator) -> np.ndarray:
    """2 to 4 small overlapping ellipses, placed where no object's centre is near (a few tries)."""
    for _ in range(10):
        cx, cy = rng.uniform(30, WIDTH - 30), rng.uniform(30, HEIGHT - 30)
        if all(np.hypot(cx - o[0][0], cy - o[0][1]) > max(o[1]) + 25 for o in objects):
            break
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for _ in range(rng.integers(2, 5)):
        centre = (cx + rng.normal(0, 10), cy + rng.normal(0, 10))
        mask |= _ellipse(centre, tuple(rng.uniform(6, 22, 2)), rng.uniform(0, 180))
    return mask


def _detection(mask, label, object_class, error, score) -> Detection:
    counts, bbox = _rle(mask)
    segment = NewSegment(label, CLASSES[label], round(float(score), 4), bbox, counts)
    return Detection(segment, object_class, error)


def scene(rng: np.random.Generator) -> list[Detection]:
    """What the simulated detector stores for one generated scene (see the module's docstring)."""
    objects = [
        (
            (rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)),
            (rng.uniform(15, 80), rng.uniform(15, 80)),
            rng.uniform(0, 180),
        )
        for _ in range(1 + rng.poisson(6))
    ]
    found: list[Detection] = []
    for obj in objects:
        if rng.random() > DETECTED:
            continue
        truth = int(rng.integers(len(CLASSES)))
        if rng.random() < WRONG_CLASS:
            wrong = int((truth + rng.integers(1, len(CLASSES))) % len(CLASSES))
            found.append(_detection(_detected_mask(obj, rng), wrong, truth, "wrong class", rng.beta(3, 2.5)))
            if rng.random() >= ALSO_TRUE_CLASS:
                continue
        found.append(_detection(_detected_mask(obj, rng), truth, truth, None, rng.beta(4, 2)))
    for _ in range(rng.poisson(BLOBS_PER_IMAGE)):
        label = int(rng.integers(len(CLASSES)))
        found.append(_detection(_blob(objects, rng), label, None, "blob", rng.beta(2.5, 3)))
    return [d for d in found if d.segment.score >= THRESHOLD]


def classifier_probabilities(d: Detection, rng: np.random.Generator) -> np.ndarray:
    if d.error == "blob":
        return rng.dirichlet(np.ones(len(CLASSES)))
    alpha = np.full(len(CLASSES), 0.5)
    if d.error == "wrong class":
        alpha[d.object_class] += 3.5
        alpha[d.segment.class_id] += 2.0
    else:
        alpha[d.object_class] += 5.0
    return rng.dirichlet(alpha)


def classifier_file(image: str, stored: list, truth: dict, rng: np.random.Generator) -> dict:
    """The JSON ``seg-client meta build`` would write for ``image``, for the segments classified."""
    entries = []
    for s in stored:
        if rng.random() >= CLASSIFIED:
            continue
        p = classifier_probabilities(truth[s.id], rng)
        ranked = np.argsort(-p, kind="stable")
        classes = [
            {"class_id": int(c), "class_name": CLASSES[c], "score": round(float(p[c]), 4)} for c in ranked
        ]
        entries.append({"segment_id": s.id, "bbox": list(s.bbox), "classes": classes})
    return {"image": image, "model": CLASSIFIER, "segment_model": MODEL, "segments": entries}


def _facts(path: str) -> ImageFacts:
    return ImageFacts(path, hashlib.sha256(path.encode()).hexdigest(), 50_000, WIDTH, HEIGHT)


def measure(images: int = 320, seed: int = 0) -> dict:
    """Generate, store, rank; the errors in the first 10 % of the queue under each order."""
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="review-doubt-") as tmp:
        work = Path(tmp)
        made: dict[str, list[Detection]] = {f"scenes/img{i:05d}.jpg": scene(rng) for i in range(images)}
        with SegmentStore.open(f"sqlite:///{work / 'store.db'}") as store:
            for path, detections in made.items():
                store.save_segmentation(_facts(path), MODEL, "v1", [d.segment for d in detections], [GROUP])
            segments = store.segments(group=GROUP, model=MODEL)
        by_key = {(p, d.segment.class_id, d.segment.rle_counts): d for p, ds in made.items() for d in ds}
        truth = {s.id: by_key[(s.image, s.class_id, s.rle["counts"])] for s in segments}
        if len(truth) != sum(len(ds) for ds in made.values()):
            raise SystemExit(f"stored {len(truth)} segments of {sum(len(ds) for ds in made.values())}")
        per_image: dict[str, list] = {}
        for s in segments:
            per_image.setdefault(s.image, []).append(s)
        (work / "meta").mkdir()
        for i, (path, stored) in enumerate(sorted(per_image.items())):
            data = classifier_file(path, stored, truth, rng)
            (work / "meta" / f"{i:05d}.json").write_text(json.dumps(data))
        margins = read_classifier_margins(work / "meta")
        ranked_at = time.perf_counter()
        orders = {o: rank(segments, o, THRESHOLD, margins) for o in (Order.UNCERTAINTY, Order.SCORE)}
        rank_s = (time.perf_counter() - ranked_at) / len(orders)
    errors = np.array([truth[s.id].error is not None for s in segments])
    kinds = {k: sum(truth[s.id].error == k for s in segments) for k in ("wrong class", "blob")}
    head = max(1, round(HEAD * len(segments)))

    def caught(ids: list[int]) -> dict:
        top = [truth[i].error for i in ids[:head]]
        return {"errors": sum(e is not None for e in top), **{k: top.count(k) for k in kinds}}

    found = {o.value: caught([d.segment_id for d in ds]) for o, ds in orders.items()}
    shuffles = [errors[rng.permutation(len(segments))[:head]].sum() for _ in range(PERMUTATIONS)]
    random_mean = float(np.mean(shuffles))
    return {
        "images": images,
        "seed": seed,
        "segments": len(segments),
        "errors": int(errors.sum()),
        "error_kinds": kinds,
        "classified": len(margins),
        "head": head,
        "uncertainty": found["uncertainty"],
        "score": found["score"],
        "random": random_mean,
        "ratio": found["uncertainty"]["errors"] / random_mean if random_mean else float("inf"),
        "score_ratio": found["score"]["errors"] / random_mean if random_mean else float("inf"),
        "rank_s": rank_s,
        "wall_s": time.perf_counter() - started,
    }


def render(r: dict) -> str:
    kinds = r["error_kinds"]
    lines = [
        f"{r['images']} scenes (seed {r['seed']}): {r['segments']} segments, {r['errors']} errors "
        f"({100 * r['errors'] / r['segments']:.1f} %: {kinds['wrong class']} wrong class, {kinds['blob']} "
        f"blobs); classifier results for {r['classified']}; rank takes {r['rank_s']:.2f} s.",
        f"errors in the first {r['head']} of the queue (10 %):",
        "",
        "| order | errors | of all errors | wrong class | blobs |",
        "|---|---|---|---|---|",
    ]
    for name in ("uncertainty", "score"):
        f = r[name]
        lines.append(
            f"| {name} | {f['errors']} | {100 * f['errors'] / r['errors']:.0f} % | {f['wrong class']} | "
            f"{f['blob']} |"
        )
    lines += [
        f"| random (mean of {PERMUTATIONS}) | {r['random']:.1f} | "
        f"{100 * r['random'] / r['errors']:.0f} % | | |",
        "",
        f"uncertainty / random: {r['ratio']:.2f}× (score / random: {r['score_ratio']:.2f}×)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=320, help="generated scenes (default 320)")
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")
    results = measure(args.images, args.seed)
    print(render(results))
    print(f"({results['wall_s']:.1f} s in all)")


if __name__ == "__main__":
    main()
