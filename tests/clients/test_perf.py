# ruff: noqa: E501 - SAMPLE holds perf_analyzer's own long lines
import base64
import json
import struct

from clients.inference.perf import parse_composing, split_by_concurrency, write_input_data

SAMPLE = """Request concurrency: 1
  Client:
    Request count: 41
  Composing models:
  seg_model, version: 1
      Inference count: 46
      Avg request latency: 562397 usec (overhead 5 usec + queue 252020 usec + compute input 698 usec + compute infer 306668 usec + compute output 3005 usec)

  seg_postprocess, version: 1
      Avg request latency: 19188 usec (overhead 5 usec + queue 1349 usec + compute input 530 usec + compute infer 16817 usec + compute output 486 usec)

Request concurrency: 2
  Client:
"""


def test_composing_model_breakdown_per_concurrency():
    blocks = split_by_concurrency(SAMPLE)
    assert list(blocks) == [1, 2]
    stages = parse_composing(blocks[1])
    assert stages["seg_model"] == {
        "total": 562.397,
        "queue": 252.02,
        "input": 0.698,
        "infer": 306.668,
        "output": 3.005,
    }
    assert stages["seg_postprocess"]["infer"] == 16.817
    assert parse_composing(blocks[2]) == {}


def test_input_data_is_the_serialised_bytes_tensor(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"\xff\xd8 jpeg bytes")
    data = json.loads(write_input_data([image], tmp_path / "d.json").read_text())
    raw = base64.b64decode(data["data"][0]["IMAGE"]["b64"])
    assert struct.unpack("<I", raw[:4])[0] == len(raw) - 4 and raw[4:] == image.read_bytes()
    assert data["data"][0]["IMAGE"]["shape"] == [1]
