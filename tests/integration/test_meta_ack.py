"""``seg-client meta post`` counts a chunk as posted only on the service's acknowledgement
(segcontract/schemas/ret_meta_ack.schema.json), and one group's failure does not stop the others.

Against the real HTTP service of tests/fixtures/meta_service.py on loopback, with ret_meta.json
files written here (no tritonserver): a captive portal's 200 HTML page, an answer naming another
chunk's key, one whose ``stored`` lacks an image, and a 422 for one group of two."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from clients.meta.post import image_keys
from tests.conftest import BIN
from tests.fixtures.meta_service import MetaService
from tests.schema_check import validate

TOKEN = "ack-token-value-456"
TOKEN_ENV = "TEST_META_ACK_TOKEN"
GROUPS = {"alpha": 3, "beta": 2}  # images per group


def _ret_meta(group: str, images: int) -> dict:
    """A ret_meta.json as meta build writes it: one instance model, no detections."""
    return {
        "format": "segstack.ret_meta/1",
        "group": group,
        "models": [{"key": "seg", "name": "seg", "task": "instance_segmentation", "version": "sha256:0123"}],
        "images": [
            {
                "image": f"{group}/p{i}.png",
                "width": 64 + i,
                "height": 48,
                "sha256": hashlib.sha256(f"{group}{i}".encode()).hexdigest(),
                "groups": [group],
                "results": {"seg": {"detections": []}},
            }
            for i in range(images)
        ],
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with each group's ret_meta.json, one image per chunk, one retry per chunk."""
    for group, images in GROUPS.items():
        document = _ret_meta(group, images)
        validate(document, "ret_meta")
        folder = tmp_path / "TEST" / "ret_meta" / group
        folder.mkdir(parents=True)
        (folder / "ret_meta.json").write_text(json.dumps(document))
    config = {"ret_meta": {"token_env": TOKEN_ENV, "chunk_size": 1, "retries": 1, "timeout": 10}}
    (tmp_path / "segstack.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.fixture
def service():
    with MetaService(TOKEN) as s:
        yield s


def _post(root: Path, service: MetaService, *groups: str) -> subprocess.CompletedProcess:
    args = ["--groups", *groups, "--endpoint", service.endpoint, "--data-root", str(root)]
    return subprocess.run(
        [str(BIN / "seg-client"), "meta", "post", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, TOKEN_ENV: TOKEN},
    )


def _errors(stderr: str) -> list[str]:
    """The lines a command said, without its progress bars."""
    return [line for line in stderr.splitlines() if line.strip() and "/s]" not in line and "[00:" not in line]


def _ledger(root: Path, group: str) -> Path:
    return root / "TEST" / "ret_meta" / group / "ret_meta.posted.json"


def _acknowledged(root: Path, service: MetaService, group: str) -> list[str]:
    """The image keys the ledger lists as acknowledged by the service, in ret_meta's order."""
    path = _ledger(root, group)
    if not path.exists():
        return []
    listed = json.loads(path.read_text())["acknowledged"].get(service.endpoint, {})
    return [key for key in _keys(root, group) if key in listed]


def _keys(root: Path, group: str) -> list[str]:
    return image_keys(json.loads((root / "TEST" / "ret_meta" / group / "ret_meta.json").read_text()))


def _stored_images(service: MetaService, group: str) -> list[str]:
    stored = service.state()["stored"].values()
    return sorted(image for chunk in stored if chunk["group"] == group for image in chunk["images"])


def _every_image_posted(root: Path, service: MetaService, group: str) -> None:
    assert _acknowledged(root, service, group) == _keys(root, group)
    assert _stored_images(service, group) == [f"{group}/p{i}.png" for i in range(GROUPS[group])]


def test_a_portal_page_answering_200_posts_nothing_and_a_rerun_posts_everything(root, service):
    service.faults(["portal", "portal"])  # both attempts at the first chunk
    proc = _post(root, service, "alpha")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = _errors(proc.stderr)
    assert line.startswith("seg-client: error: alpha: not posted, 0 of 3 chunks acknowledged: "), line
    assert "chunk 1 not acknowledged after 2 attempts" in line
    assert "HTTP 200 is no acknowledgement: not JSON: <!DOCTYPE html> <html><head><title>Wi-Fi" in line
    assert TOKEN not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not _ledger(root, "alpha").exists()  # nothing recorded
    assert [r["fault"] for r in service.state()["requests"]] == ["portal", "portal"]  # then it stopped

    again = _post(root, service, "alpha")
    assert again.returncode == 0, again.stderr
    assert "alpha: 3 images sent in 3 chunks" in again.stdout and "0 acknowledged before" in again.stdout
    _every_image_posted(root, service, "alpha")


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("wrong-key", "acknowledges Idempotency-Key "),
        ("partial", "stored lacks 1 of the chunk's 1 images (first: 'alpha/p1.png')"),
    ],
)
def test_an_answer_for_other_images_is_no_acknowledgement(root, service, fault, why):
    service.faults(["ok", fault, fault])  # the first chunk acknowledged, both attempts at the second not
    proc = _post(root, service, "alpha")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = _errors(proc.stderr)
    assert line.startswith("seg-client: error: alpha: not posted, 1 of 3 chunks acknowledged: "), line
    assert "chunk 2 not acknowledged after 2 attempts (last: HTTP 200 is no acknowledgement: " + why in line
    assert _acknowledged(root, service, "alpha") == _keys(root, "alpha")[:1]  # the second one not listed
    ledger = _ledger(root, "alpha").read_bytes()

    again = _post(root, service, "alpha")
    assert again.returncode == 0, again.stderr
    assert "alpha: 2 images sent in 2 chunks" in again.stdout and "1 acknowledged before" in again.stdout
    _every_image_posted(root, service, "alpha")
    assert _ledger(root, "alpha").read_bytes() != ledger


def test_a_wrong_answer_then_the_acknowledgement_is_posted(root, service):
    service.faults(["partial", "ok", "portal", "ok"])  # each retried once
    proc = _post(root, service, "alpha")
    assert proc.returncode == 0, proc.stderr
    assert "alpha: 3 images sent in 3 chunks (" in proc.stdout and "5 requests)" in proc.stdout, proc.stdout
    _every_image_posted(root, service, "alpha")
    assert service.state()["duplicates"] == 0


def test_one_groups_refusal_does_not_stop_the_others(root, service):
    service.faults(["reject"])  # alpha's first chunk: 422; beta's chunks answered
    proc = _post(root, service, "alpha", "beta")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = _errors(proc.stderr)
    assert line.startswith("seg-client: error: alpha: not posted, 0 of 3 chunks acknowledged: "), line
    assert "refused chunk 1 (HTTP 422): " in line and "width must be positive" in line
    assert "beta: 2 images sent in 2 chunks" in proc.stdout and "alpha" not in proc.stdout, proc.stdout
    _every_image_posted(root, service, "beta")
    assert not _ledger(root, "alpha").exists() and _stored_images(service, "alpha") == []

    again = _post(root, service, "alpha", "beta")
    assert again.returncode == 0, again.stderr
    assert "alpha: 3 images sent in 3 chunks" in again.stdout
    assert "beta: 0 images sent in 0 chunks" in again.stdout and "2 acknowledged before" in again.stdout
    _every_image_posted(root, service, "alpha")
