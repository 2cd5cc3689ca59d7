"""What counts as the metadata service's acknowledgement of a chunk (no service needed): the
schema in segcontract/schemas/ret_meta_ack.schema.json, then the key and images of the chunk."""

from __future__ import annotations

import json

import pytest

from clients.meta.post import acknowledgement_problem, make_chunks
from tests.schema_check import validate

DOCUMENT = {
    "format": "segstack.ret_meta/1",
    "group": "g",
    "models": [],
    "images": [{"image": name} for name in ("a/p0.png", "p1.png", "p2.png")],
}
CHUNK = make_chunks(DOCUMENT, 2)[0]


def _answer(**members) -> str:
    return json.dumps({"idempotency_key": CHUNK.key, "stored": ["p1.png", "a/p0.png"], **members})


def test_the_acknowledgement_names_the_key_and_every_image_in_any_order():
    assert CHUNK.names == ("a/p0.png", "p1.png")
    validate(json.loads(_answer()), "ret_meta_ack")
    assert acknowledgement_problem(CHUNK, _answer()) is None
    assert acknowledgement_problem(CHUNK, _answer(duplicate=True, received_at="now")) is None  # ignored
    assert acknowledgement_problem(CHUNK, _answer(stored=["p1.png", "a/p0.png", "p1.png"])) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("<html><body>Log in to the Wi-Fi</body></html>", "not JSON"),
        ("", "not JSON"),
        ('"ok"', "not an acknowledgement ('ok' is not of type 'object')"),
        (json.dumps({"accepted": CHUNK.key}), "not an acknowledgement ('idempotency_key' is a required"),
        (_answer(idempotency_key="ABC"), "not an acknowledgement ('ABC' does not match"),
        (_answer(stored="a/p0.png"), "not an acknowledgement ('a/p0.png' is not of type 'array')"),
        (
            _answer(idempotency_key="0" * 64),
            f"acknowledges Idempotency-Key 000000000000..., not this chunk's {CHUNK.key[:12]}",
        ),
        (_answer(stored=["a/p0.png"]), "stored lacks 1 of the chunk's 2 images (first: 'p1.png')"),
        (_answer(stored=[]), "stored lacks 2 of the chunk's 2 images (first: 'a/p0.png')"),
        (_answer(stored=["a/p0.png", "p1.png", "p2.png"]), "stored names 1 images the chunk does not hold"),
    ],
)
def test_anything_else_is_not(text, why):
    assert acknowledgement_problem(CHUNK, text).startswith(why)
