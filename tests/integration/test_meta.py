"""ret_meta end to end: ``groups pull`` two groups (one picture in both), ``segments build`` and a
review, a badlisted picture, then ``seg-client meta build`` with an instance, a semantic and a
classification model (on whole images and on the stored segments) served by one real
tritonserver, and ``seg-client meta post`` to a real HTTP service on loopback that checks the
token and fails some requests (503, 429 with Retry-After, a dropped connection, a 422)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import BIN, run_cli
from tests.fixtures.meta_service import MetaService
from tests.fixtures.synthetic import make_scene
from tests.schema_check import validate

TOKEN = "s3cret-token-value-123"
TOKEN_ENV = "TEST_META_TOKEN"
SASHA = "sasha test"
MODELS = ("seg", "sem", "cls")


@pytest.fixture(scope="module")
def server(yolo_checkpoint, tmp_path_factory):
    """One tritonserver serving three models built into one repository."""
    from serving.tritonserver import TritonServer
    from tests.fixtures.random_checkpoints import make_random_classifier, make_random_smp

    weights = tmp_path_factory.mktemp("meta_weights")
    repo = tmp_path_factory.mktemp("meta_repository")
    builds = [
        ("yolov8n-seg", yolo_checkpoint, "seg"),
        ("smp", make_random_smp(weights / "sem.pth", size=(64, 64)), "sem"),
        (
            "classifier",
            make_random_classifier(weights / "cls.ckpt", ("circle", "square", "triangle"), 64),
            "cls",
        ),
    ]
    for family, checkpoint, name in builds:
        run_cli(
            "build-repo",
            "--model",
            family,
            "--weights",
            str(checkpoint),
            "--name",
            name,
            "--output",
            str(repo),
            "--runtime",
            "python-onnx",
            "--quiet",
        )
    with TritonServer(repo, log_path=tmp_path_factory.mktemp("meta_logs") / "server.log") as s:
        yield s


def _pull(root: Path, group: str, names: list[str], source: Path) -> None:
    manifest = source / f"{group}.json"
    rows = [{"url": f"{n}.png", "id": n, "label": "shape", "camera": f"cam-{i}"} for i, n in enumerate(names)]
    manifest.write_text(json.dumps(rows))
    run_cli(
        "seg-client",
        "groups",
        "pull",
        "--group",
        group,
        "--manifest",
        str(manifest),
        "--data-root",
        str(root),
    )


@pytest.fixture(scope="module")
def root(server, tmp_path_factory) -> Path:
    """DATA/ with the groups pulled, segmented, one picture reviewed and one badlisted, and a
    configuration naming the models and the service."""
    root = tmp_path_factory.mktemp("meta_root")
    source = tmp_path_factory.mktemp("meta_source")
    rng = np.random.default_rng(4)
    for i in range(6):
        cv2.imwrite(str(source / f"p{i}.png"), make_scene(120 + 20 * i, 160, rng)[0])
    _pull(root, SASHA, ["p0", "p1", "p2", "p3"], source)
    _pull(root, "test", ["p3", "p4", "p5"], source)  # p3 is in both
    for group in (SASHA, "test"):
        run_cli(
            "seg-client",
            "segments",
            "build",
            "--group",
            group,
            "--model",
            "seg",
            "--conf",
            "0.01",
            "--url",
            server.grpc_url,
            "--data-root",
            str(root),
        )
    run_cli("seg-client", "segments", "review", "--approve", "p3.png", "--data-root", str(root))
    (root / "bad.txt").write_text("p1\n")
    run_cli("seg-client", "segments", "badlist", "push", str(root / "bad.txt"), "--data-root", str(root))
    config = {
        "triton": {"url": server.grpc_url, "timeout": 60},
        "models": [
            {"name": "seg", "conf": 0.01},
            {"name": "sem"},
            {"name": "cls", "top_k": 2},
            {"name": "cls", "key": "cls_segments", "segments": True, "segment_model": "seg", "top_k": 1},
        ],
        "ret_meta": {"token_env": TOKEN_ENV, "chunk_size": 1},
    }
    (root / "segstack.yaml").write_text(yaml.safe_dump(config))
    return root


def _meta(root: Path, *args: str, check: bool = True, env: dict | None = None):
    proc = subprocess.run(
        [str(BIN / "seg-client"), "meta", *args, "--data-root", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"meta {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _lines(stderr: str) -> list[str]:
    """What a command said, without its progress bars."""
    return [line for line in stderr.splitlines() if line.strip() and "/s]" not in line and "[00:" not in line]


def _document(root: Path, group: str) -> dict:
    document = json.loads((root / "TEST" / "ret_meta" / group / "ret_meta.json").read_text())
    validate(document, "ret_meta")
    return document


def test_build_writes_every_images_facts_and_every_models_outputs(root):
    proc = _meta(root, "build", "--groups", SASHA, "test")
    assert f"{SASHA}: 3 images (1 badlisted left out" in proc.stdout, proc.stdout
    assert "test: 3 images (0 badlisted" in proc.stdout
    document = _document(root, SASHA)
    print(json.dumps(document["images"][0], indent=1)[:3000])
    assert [m["key"] for m in document["models"]] == ["seg", "sem", "cls", "cls_segments"]
    assert {m["task"] for m in document["models"]} == {
        "instance_segmentation",
        "semantic_segmentation",
        "classification",
    }
    for model in document["models"]:
        assert model["version"].startswith("sha256:") and len(model["weights_sha256"]) == 64
    images = {i["image"]: i for i in document["images"]}
    assert sorted(images) == ["p0.png", "p2.png", "p3.png"]  # p1 is badlisted
    shared = images["p3.png"]
    picture = root / "DATA" / "pictures" / "p3.png"
    import hashlib

    assert shared["sha256"] == hashlib.sha256(picture.read_bytes()).hexdigest()
    assert (shared["width"], shared["height"]) == (160, 180) and shared["size"] == picture.stat().st_size
    assert shared["groups"] == sorted([SASHA, "test"]) and shared["meta"]["camera"] == "cam-3"
    for image in images.values():
        results = image["results"]
        assert set(results) == {"seg", "sem", "cls", "cls_segments"}
        assert len(results["cls"]["classes"]) == 2
        assert (root / "TEST" / "ret_meta" / SASHA / results["sem"]["mask"]).is_file()
        assert abs(sum(c["pixel_fraction"] for c in results["sem"]["classes"]) - 1) < 1e-3
        statuses = {d["status"] for d in results["seg"]["detections"]}
        expected = {"approved"} if image["image"] == "p3.png" else {"unchecked"}
        assert statuses <= expected, (image["image"], statuses)
        # the approved segments only: p3's
        segments = results["cls_segments"]["segments"]
        assert (len(segments) > 0) == (image["image"] == "p3.png" and bool(results["seg"]["detections"]))
        assert all(len(s["classes"]) == 1 for s in segments)


def test_a_rerun_asks_only_for_what_changed(root):
    _meta(root, "build", "--groups", SASHA)
    again = _meta(root, "build", "--groups", SASHA)
    assert "seg 0 asked / 3 kept" in again.stdout and "cls_segments 0 asked / 3 kept" in again.stdout, (
        again.stdout
    )
    # a picture replaced under the same name: every model is asked about it again
    picture = root / "DATA" / "pictures" / "p2.png"
    image = cv2.imread(str(picture))
    cv2.imwrite(str(picture), cv2.flip(image, 1))
    stale = _meta(root, "build", "--groups", SASHA, check=False)  # its stored segments are of the old one
    assert (
        stale.returncode == 1
        and "p2.png: cls_segments: the picture changed since seg segmented it" in stale.stderr
    )
    assert "1 images with a missing result" in stale.stdout
    assert "seg 1 asked / 2 kept" in stale.stdout and "sem 1 asked / 2 kept" in stale.stdout, stale.stdout
    assert "p2.png" in _document(root, SASHA)["failures"]
    run_cli(
        "seg-client",
        "segments",
        "build",
        "--group",
        SASHA,
        "--model",
        "seg",
        "--conf",
        "0.01",
        "--url",
        yaml.safe_load((root / "segstack.yaml").read_text())["triton"]["url"],
        "--data-root",
        str(root),
    )
    changed = _meta(root, "build", "--groups", SASHA)
    assert "seg 0 asked / 3 kept" in changed.stdout and "sem 0 asked / 3 kept" in changed.stdout, (
        changed.stdout
    )
    assert "cls_segments 1 asked / 2 kept" in changed.stdout  # the one that failed, asked again
    assert "failures" not in _document(root, SASHA)
    # a model whose version changed (another build of it): all its images again, the others kept
    stamp = root / "TEST" / "ret_meta" / SASHA / "models" / "cls" / "model.json"
    stamp.write_text(json.dumps({"name": "cls", "version": "sha256:0000000000000000"}))
    rebuilt = _meta(root, "build", "--groups", SASHA)
    assert "cls 3 asked / 0 kept" in rebuilt.stdout and "sem 0 asked / 3 kept" in rebuilt.stdout, (
        rebuilt.stdout
    )
    assert json.loads(stamp.read_text())["version"] != "sha256:0000000000000000"


def test_configuration_mistakes_are_one_line(root, server, tmp_path):
    cases = [
        ({"models": [{"name": "seg", "top_k": 3}]}, "models[0].top_k: 'seg' serves instance_segmentation"),
        ({"models": [{"nam": "seg"}]}, "models[0]: 'nam' was unexpected"),
        ({"models": [{"name": "cls"}, {"name": "cls"}]}, "'cls' is listed twice"),
        ({"ret_meta": {"endpoint": "ftp://x"}, "models": [{"name": "seg"}]}, "ret_meta.endpoint"),
        ({"models": [{"name": "nope"}]}, "model 'nope' is not served"),
        ({}, "no models"),
    ]
    for document, expected in cases:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"triton": {"url": server.grpc_url}, **document}))
        proc = _meta(root, "build", "--groups", "test", "--config", str(config), check=False)
        assert proc.returncode == 2 and expected in proc.stderr, (document, proc.stderr)
        assert len(_lines(proc.stderr)) == 1 and "Traceback" not in proc.stderr


@pytest.fixture
def service():
    with MetaService(TOKEN) as s:
        yield s


def _post(root: Path, service: MetaService, *args: str, check: bool = True, token: str | None = TOKEN):
    env = {TOKEN_ENV: token} if token is not None else {}
    return _meta(root, "post", *args, "--endpoint", service.endpoint, check=check, env=env)


def _every_image_once(root: Path, service: MetaService, group: str) -> dict:
    """The service stored each image of the group's ret_meta once, and the ledger lists each as
    acknowledged in a chunk the service stored."""
    state = service.state()
    ledger = json.loads((root / "TEST" / "ret_meta" / group / "ret_meta.posted.json").read_text())
    acknowledged = ledger["acknowledged"][service.endpoint]
    images = [i["image"] for i in _document(root, group)["images"]]
    stored = {k: v for k, v in state["stored"].items() if v["group"] == group}
    assert sorted(i for v in stored.values() for i in v["images"]) == sorted(images)
    assert len(acknowledged) == len(images) and {a["chunk"] for a in acknowledged.values()} == set(stored)
    return state


def test_post_retries_transient_failures_and_a_rerun_sends_nothing(root, service):
    _meta(root, "build", "--groups", SASHA, "test")
    service.faults(["503", "429:1", "drop", "ok", "500"])
    started = time.monotonic()
    proc = _post(root, service, "--groups", SASHA, "test")
    assert time.monotonic() - started >= 1.0  # the Retry-After was waited for
    assert f"{SASHA}: 3 images sent in 3 chunks" in proc.stdout and "test: 3 images sent" in proc.stdout, (
        proc.stdout
    )
    assert TOKEN not in proc.stdout + proc.stderr
    state = _every_image_once(root, service, SASHA)
    _every_image_once(root, service, "test")
    assert state["duplicates"] == 0
    assert [r["status"] for r in state["requests"][:5]] == [503, 429, None, 200, 500]
    assert all(r["encoding"] == "gzip" for r in state["requests"])
    requests = len(state["requests"])
    again = _post(root, service, "--groups", SASHA, "test")
    assert "0 images sent in 0 chunks" in again.stdout and "3 acknowledged before" in again.stdout
    assert len(service.state()["requests"]) == requests
    dry = _post(root, service, "--groups", SASHA, "--dry-run", token=None)
    assert "3 acknowledged before; 0 to send" in dry.stdout


def test_a_rebuilt_ret_meta_sends_only_the_images_that_changed(root, service):
    _meta(root, "build", "--groups", SASHA)
    first = _post(root, service, "--groups", SASHA, "--chunk-size", "2")
    assert "3 images sent in 2 chunks" in first.stdout
    config = yaml.safe_load((root / "segstack.yaml").read_text())
    changed = {**config, "models": [{**config["models"][0], "conf": 0.5}, *config["models"][1:]]}
    (root / "changed.yaml").write_text(yaml.safe_dump(changed))
    rebuilt = _meta(root, "build", "--groups", SASHA, "--config", str(root / "changed.yaml"))
    assert "seg 3 asked / 0 kept" in rebuilt.stdout and "sem 0 asked / 3 kept" in rebuilt.stdout  # settings
    (root / "bad2.txt").write_text("p0\n")
    run_cli("seg-client", "segments", "badlist", "push", str(root / "bad2.txt"), "--data-root", str(root))
    _meta(root, "build", "--groups", SASHA, "--config", str(root / "changed.yaml"))
    document = _document(root, SASHA)
    assert [i["image"] for i in document["images"]] == ["p2.png", "p3.png"]
    # seg's settings changed every image; p0 is gone: the two left are sent, in one chunk
    again = _post(root, service, "--groups", SASHA, "--chunk-size", "2")
    assert "2 images sent in 1 chunks" in again.stdout and "0 acknowledged before" in again.stdout
    assert len(service.state()["stored"]) == 3
    unchanged = _post(root, service, "--groups", SASHA, "--chunk-size", "1")
    assert "0 images sent" in unchanged.stdout  # another chunk size changes nothing
    run_cli("seg-client", "segments", "badlist", "push", str(root / "bad.txt"), "--data-root", str(root))


def test_refusals_are_one_line_and_never_show_the_token(root, service):
    _meta(root, "build", "--groups", "test")
    service.faults(["reject"])
    proc = _post(root, service, "--groups", "test", check=False)
    assert proc.returncode == 2 and "HTTP 422" in proc.stderr and "width must be positive" in proc.stderr
    wrong = _post(root, service, "--groups", "test", check=False, token="wrong-" + TOKEN)
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr and "invalid token" in wrong.stderr
    assert TOKEN not in wrong.stderr + wrong.stdout
    missing = _post(root, service, "--groups", "test", check=False, token=None)
    assert missing.returncode == 2 and f"${TOKEN_ENV} is not set" in missing.stderr
    service.faults(["503"] * 10)
    down = _meta(
        root, "post", "--groups", "test", "--endpoint", service.endpoint, check=False, env={TOKEN_ENV: TOKEN}
    )
    assert down.returncode == 2 and "not acknowledged after 6 attempts" in down.stderr
    for each in (proc, wrong, missing, down):  # besides the progress bar, one line
        assert [line.startswith("seg-client: error:") for line in _lines(each.stderr)] == [True]
        assert "Traceback" not in each.stderr


def test_a_killed_post_resends_only_what_was_not_acknowledged(root, service):
    _meta(root, "build", "--groups", SASHA, "test")
    service.faults([], delay=1.0)  # every answer held a second after the chunk is stored
    env = {**os.environ, TOKEN_ENV: TOKEN}
    args = [str(BIN / "seg-client"), "meta", "post", "--groups", SASHA, "--endpoint", service.endpoint]
    first = subprocess.Popen(
        [*args, "--data-root", str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(service.state()["stored"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-run: one chunk answered, one stored but not yet answered
    first.communicate(timeout=10)
    stored_before = set(service.state()["stored"])
    assert len(stored_before) == 2
    service.faults([], delay=0.0)
    in_flight = (set(service.state()["stored"]) - _acknowledged_chunks(root, service, SASHA)).pop()
    rerun = _post(root, service, "--groups", SASHA)
    assert "2 images sent in 2 chunks, " not in rerun.stdout and "1 acknowledged before" in rerun.stdout
    state = _every_image_once(root, service, SASHA)
    # the chunk in flight at the kill was sent again with its key: stored once, counted a duplicate
    assert state["duplicates"] == 1
    keys = [r["key"] for r in state["requests"] if r["status"] == 200]
    assert [k for k in keys if keys.count(k) > 1] == [in_flight, in_flight]


def _acknowledged_chunks(root: Path, service: MetaService, group: str) -> set[str]:
    ledger = json.loads((root / "TEST" / "ret_meta" / group / "ret_meta.posted.json").read_text())
    return {a["chunk"] for a in ledger["acknowledged"][service.endpoint].values()}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a test certificate with (.ci/run installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_certificates_are_checked_and_a_ca_bundle_trusts_one(root, certificate, tmp_path):
    _meta(root, "build", "--groups", "test")
    with MetaService(TOKEN, tls=certificate) as service:
        assert service.endpoint.startswith("https://127.0.0.1:")
        untrusted = _post(root, service, "--groups", "test", check=False)
        assert untrusted.returncode == 2 and "TLS certificate is not trusted" in untrusted.stderr
        assert "--ca-bundle" in untrusted.stderr and not service.state()["requests"]
        not_pem = tmp_path / "not.pem"
        not_pem.write_text("not a certificate")
        bad = _post(root, service, "--groups", "test", "--ca-bundle", str(not_pem), check=False)
        assert bad.returncode == 2 and "not a PEM CA bundle" in bad.stderr and "Traceback" not in bad.stderr
        trusted = _post(root, service, "--groups", "test", "--ca-bundle", str(certificate[0]))
        assert "3 images sent" in trusted.stdout
        _every_image_once(root, service, "test")
