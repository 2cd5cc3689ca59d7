"""A picture badlisted after its group was pulled is left out by every command that reads the
group, at the moment it runs, whatever DATA/datasets/<group>.csv still lists; each says how many it
left out. Real commands on a real SQLite store (DATA/segments.db) and DATA layout, no server:
``evaluate`` scores records, ``segments export`` reads the store, training reads its samples
(``infer --group`` against a real tritonserver is in tests/integration/test_badlist_at_run_time.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli

GROUP = "g"
LABELS = {"a": "circle", "b": "square", "c": "circle", "d": "square"}


def _db(root: Path) -> str:
    return f"sqlite:///{root / 'DATA' / 'segments.db'}"


def _pulled(root: Path) -> None:
    """DATA/pictures/g/{a,b,c,d}.png and the CSV a pull wrote, then `b` badlisted (after the pull:
    the CSV still lists it)."""
    folder = root / "DATA" / "pictures" / GROUP
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in LABELS:
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    datasets = root / "DATA" / "datasets"
    datasets.mkdir(parents=True)
    with open(datasets / f"{GROUP}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows([f"{GROUP}/{name}.png", label] for name, label in LABELS.items())
    with SegmentStore.open(_db(root)) as store:
        store.push_badlist(["b.png"], source="bad.txt")


def _classification_records(root: Path, predicted: dict[str, str]) -> None:
    """What `infer --group g` with a classifier wrote before the push: a record per picture."""
    out = root / "TEST" / "inference" / GROUP / GROUP
    out.mkdir(parents=True)
    for name, label in predicted.items():
        record = {
            "image": f"{GROUP}/{name}.png",
            "width": 48,
            "height": 40,
            "model": "cls",
            "classes": [{"class_id": 0 if label == "circle" else 1, "class_name": label, "score": 0.9}],
        }
        (out / f"{name}.json").write_text(json.dumps(record))


def test_evaluate_with_group_alone_reads_the_groups_csv_and_leaves_badlisted_out(tmp_path):
    _pulled(tmp_path)
    # b, badlisted, was predicted wrongly: scoring it would make the accuracy 3/4
    _classification_records(tmp_path, {"a": "circle", "b": "circle", "c": "circle", "d": "square"})
    proc = run_cli("seg-client", "evaluate", "--group", GROUP, "--data-root", str(tmp_path))
    assert proc.stdout.startswith("accuracy 1.0000 (3/3 samples, 3 images; 0 unlabelled)"), proc.stdout
    assert "1 badlisted images left out" in proc.stdout
    assert "have no result" not in proc.stdout


def test_evaluate_with_a_group_whose_csv_is_missing_says_where_it_looked(tmp_path):
    (tmp_path / "TEST" / "inference" / GROUP).mkdir(parents=True)
    proc = run_cli("seg-client", "evaluate", "--group", GROUP, "--data-root", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = f"seg-client: error: {tmp_path / 'DATA' / 'datasets' / f'{GROUP}.csv'}: no such file;"
    assert proc.stderr.startswith(expected), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_export_says_how_many_badlisted_images_it_left_out(tmp_path):
    with SegmentStore.open(_db(tmp_path)) as store:
        for i, name in enumerate(LABELS):
            facts = ImageFacts(f"{GROUP}/{name}.png", f"{i}" * 64, 10, 4, 3)
            store.save_segmentation(
                facts, "m", "v1", [NewSegment(0, "cat", 0.9, (0, 0, 1, 1), "abc")], groups=[GROUP]
            )
        store.push_badlist(["b.png"], source="bad.txt")
    out = tmp_path / "x.json"
    proc = run_cli(
        "seg-client", "segments", "export", "--group", GROUP, "--format", "coco", "--out", str(out),
        "--data-root", str(tmp_path),
    )  # fmt: skip
    assert proc.stdout.strip() == f"3 images (1 badlisted left out), 3 segments → {out}"
    assert sorted(i["file_name"] for i in json.loads(out.read_text())["images"]) == [
        f"{GROUP}/{n}.png" for n in "acd"
    ]


def test_training_leaves_out_what_is_badlisted_now(tmp_path):
    from store.layout import DataLayout
    from training.classify_options import ClassifyOptions
    from training.classify_samples import collect_samples

    _pulled(tmp_path)
    samples, report = collect_samples(ClassifyOptions(cat=GROUP, data_root=tmp_path), DataLayout(tmp_path))
    assert sorted(s.path.name for s in samples) == ["a.png", "c.png", "d.png"]
    assert "1 badlisted images left out" in report.lines()


def test_without_a_store_nothing_is_left_out_and_no_store_is_made(tmp_path):
    from store.layout import DataLayout
    from training.classify_options import ClassifyOptions
    from training.classify_samples import collect_samples

    _pulled(tmp_path)
    (tmp_path / "DATA" / "segments.db").unlink()
    samples, report = collect_samples(ClassifyOptions(cat=GROUP, data_root=tmp_path), DataLayout(tmp_path))
    assert len(samples) == 4 and report.badlisted == 0
    assert not (tmp_path / "DATA" / "segments.db").exists()
