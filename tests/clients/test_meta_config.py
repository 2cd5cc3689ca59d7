"""segstack.yaml as meta build and post read it, and how ret_meta is cut into chunks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from clients.meta.config_file import DEFAULT_TOKEN_ENV, ServiceSettings, load_config
from clients.meta.post import check_endpoint, check_token, image_keys, make_chunks
from clients.triton.client import ClientError
from segcontract import schemas


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segstack.yaml"
    path.write_text(text)
    return path


def test_no_file_means_the_defaults_and_a_given_missing_file_is_an_error(tmp_path):
    config = load_config(None, tmp_path)
    assert config.path is None and config.urls == ("127.0.0.1:8001",) and config.models == ()
    assert config.layout.pictures == tmp_path / "DATA" / "pictures"
    assert config.layout.ret_meta == tmp_path / "TEST" / "ret_meta"
    assert config.service.token_env == DEFAULT_TOKEN_ENV and config.service.chunk_size == 100
    with pytest.raises(ClientError, match="no such file"):
        load_config(tmp_path / "other.yaml", tmp_path)


def test_every_key_is_read(tmp_path):
    _write(
        tmp_path,
        """
triton: {url: [a:1, b:2], timeout: 5, concurrency: 2}
layout: {pictures: imgs, ret_meta: /abs/out}
store: {url: "sqlite:///x.db"}
models:
  - {name: seg, conf: 0.3, iou: 0.5, max_det: 10}
  - {name: cls, key: cls_seg, segments: true, segment_model: seg, top_k: 2}
ret_meta: {endpoint: "https://m.example/api", token_env: MY_TOKEN, chunk_size: 7, timeout: 3,
           retries: 1, ca_bundle: ca.pem}
""",
    )
    config = load_config(None, tmp_path)
    assert config.urls == ("a:1", "b:2") and config.timeout_s == 5 and config.concurrency == 2
    assert config.layout.pictures == tmp_path / "imgs" and config.layout.ret_meta == Path("/abs/out")
    assert config.layout.database == tmp_path / "segments.db"  # beside the pictures' folder
    assert config.db == "sqlite:///x.db"
    seg, cls = config.models
    assert seg.overrides == {"conf": 0.3, "iou": 0.5, "max_det": 10, "top_k": None} and seg.label == "seg"
    assert (cls.label, cls.segments, cls.segment_model, cls.top_k) == ("cls_seg", True, "seg", 2)
    service = config.service
    assert (service.endpoint, service.token_env, service.chunk_size, service.retries) == (
        "https://m.example/api",
        "MY_TOKEN",
        7,
        1,
    )
    assert service.ca_bundle == tmp_path / "ca.pem" and service.timeout_s == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [{name: a, top_k: 0}]", "models[0].top_k: 0 is less than the minimum of 1"),
        ("models: [{name: a, colour: red}]", "models[0]: 'colour' was unexpected; the keys here are conf,"),
        ("triton: {url: 5}", "triton.url: expected gRPC HOST:PORT"),
        ("ret_meta: {token_env: 'not a name'}", "ret_meta.token_env: not an environment variable's name"),
        ("layout: {pictures: x, tmp: y}", "layout: 'tmp' was unexpected"),
        ("models: [{name: a}, {name: a}]", "models[1]: 'a' is listed twice"),
        ("models: [\n", "not valid YAML (line 2)"),
        ("- a\n- b\n", "[] is not of type 'object'"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ClientError) as error:
        load_config(path, tmp_path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected.replace("[] is", "['a', 'b'] is") in message, message


def test_every_key_of_the_schema_is_described():
    def walk(schema: dict, where: str) -> None:
        for key, sub in schema.get("properties", {}).items():
            assert sub.get("description") or sub.get("properties"), f"{where}.{key} has no description"
            walk(sub, f"{where}.{key}")
        if "items" in schema:
            walk(schema["items"], f"{where}[]")

    walk(schemas.load("segstack_config"), "segstack.yaml")


def test_images_are_keyed_by_content_and_only_the_unacknowledged_are_chunked():
    document = {
        "format": "segstack.ret_meta/1",
        "group": "g",
        "built_at": "2026-12-02T00:00:00+00:00",
        "models": [{"key": "m"}],
        "images": [{"image": f"{i}.png"} for i in range(5)],
    }
    keys = image_keys(document)
    assert len(set(keys)) == 5
    assert image_keys({**document, "built_at": "2027-01-01T00:00:00+00:00"}) == keys  # not content
    assert image_keys({**document, "models": [{"key": "m2"}]})[0] != keys[0]  # the models' facts are
    fewer = {**document, "images": document["images"][1:]}
    assert image_keys(fewer) == keys[1:]  # removing one shifts no other image's key
    chunks = make_chunks(document, 2)
    assert [c.images for c in chunks] == [2, 2, 1] and len({c.key for c in chunks}) == 3
    assert json.loads(chunks[2].body)["images"] == [{"image": "4.png"}]
    assert chunks[0].key == hashlib.sha256(chunks[0].body).hexdigest()
    pending = make_chunks(document, 2, acknowledged={keys[0], keys[3]})
    assert [c.image_keys for c in pending] == [(keys[1], keys[2]), (keys[4],)]
    assert make_chunks(document, 2, acknowledged=set(keys)) == []


def test_a_token_a_header_cannot_carry_is_refused_without_showing_it():
    settings = ServiceSettings(token_env="T")
    check_token("abc.DEF-123_~", settings)
    for token in ("two words", "line\nbreak", "caf\u00e9"):
        with pytest.raises(ClientError) as error:
            check_token(token, settings)
        assert token not in str(error.value) and "$T" in str(error.value)


def test_a_token_pasted_into_token_env_is_not_echoed(tmp_path):
    path = _write(tmp_path, "ret_meta: {token_env: 'sk-live 1234567890'}")
    with pytest.raises(ClientError) as error:
        load_config(path, tmp_path)
    assert "1234567890" not in str(error.value) and "ret_meta.token_env" in str(error.value)


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("https://meta.example/api", True),
        ("http://127.0.0.1:8080/x", True),
        ("http://localhost/x", True),
        ("http://meta.example/api", False),
        ("ftp://meta.example", False),
        ("meta.example", False),
        ("https://user:pass@meta.example/api", False),
    ],
)
def test_the_token_travels_in_clear_only_on_this_machine(endpoint, ok):
    if ok:
        check_endpoint(endpoint)
    else:
        with pytest.raises(ClientError):
            check_endpoint(endpoint)
