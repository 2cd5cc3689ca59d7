"""build-repo's default python-onnx build serves one Python model (python_backend_models/
yolo_seg_pipeline.py). Fed the full square (--square), its answers are the three-model ensemble's,
image by image, byte for byte; by default (each image padded only to the stride) they are
ultralytics' predict's (tests/families/test_yolo_seg.py). A request batched with bad ones, or with
images of other shapes, is answered as if it were alone."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tritonclient.utils import InferenceServerException

from clients.triton.client import SegmentationClient
from tests.conftest import MODEL, SQUARE_MODEL

OVERRIDES = {"conf": 0.1, "max_det": 30}  # a random-weight model: low enough to find something


def _answer(client: SegmentationClient, data: bytes, overrides=OVERRIDES, model=MODEL):
    result = client.infer_instances(model, data, overrides)
    return result.height, result.width, result.boxes, result.scores, result.classes, result.masks


def _counts(url: str) -> tuple[int, int]:
    """The served model's executions and requests so far (Triton's statistics)."""
    import tritonclient.grpc as grpcclient

    stats = grpcclient.InferenceServerClient(url).get_inference_statistics(MODEL, as_json=True)
    model = stats["model_stats"][0]
    return int(model.get("execution_count", 0)), int(
        model["inference_stats"]["success"].get("count", 0)
    ) + int(model["inference_stats"]["fail"].get("count", 0))


def test_the_one_model_fed_the_square_answers_as_the_ensemble_does(ensemble_triton, sample_images):
    client = SegmentationClient(ensemble_triton.grpc_url)
    found = 0
    for path in sorted(sample_images.iterdir()):
        data = path.read_bytes()
        for overrides in (OVERRIDES, {"conf": 0.3, "max_det": 2}):
            a, b = _answer(client, data, overrides, SQUARE_MODEL), _answer(client, data, overrides)
            assert a[:2] == b[:2], path.name
            for x, y in zip(a[2:5], b[2:5]):
                np.testing.assert_array_equal(x, y, err_msg=path.name)
            assert a[5] == b[5], path.name  # the masks' RLE, byte for byte
            assert len(a[3]) <= overrides["max_det"]
            found += len(a[3])
    assert found > 0, "no detections to compare; lower the conf"


def test_bad_requests_batched_with_good_ones_fail_alone(triton, sample_images):
    """Many requests at once, so the dynamic batcher gathers good and bad ones, and images of
    several input shapes, into one execute."""
    client = SegmentationClient(triton.grpc_url)
    good = [p.read_bytes() for p in sorted(sample_images.iterdir())]
    expected = [_answer(client, data) for data in good]
    bad = [b"not an image", b"\xff\xd8\xff\xe0" + bytes(300)]

    def send(item):
        kind, data = item
        try:
            return kind, _answer(client, data, {"conf": "high"} if kind == "bad parameter" else OVERRIDES)
        except InferenceServerException as exc:
            return kind, exc

    items = [("good", d) for d in good] * 3 + [("bad file", d) for d in bad] * 3
    items.append(("bad parameter", good[0]))
    before = _counts(triton.grpc_url)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, items))
    executions, requests = (after - was for after, was in zip(_counts(triton.grpc_url), before))
    assert executions < requests, "no two requests were batched into one execute"
    for (kind, answer), (_, data) in zip(results, items):
        if kind == "good":
            want = expected[good.index(data)]
            assert answer[:2] == want[:2] and answer[5] == want[5]
            np.testing.assert_array_equal(answer[2], want[2])
        else:
            assert isinstance(answer, InferenceServerException), kind
            assert answer.status() == "StatusCode.INVALID_ARGUMENT", answer.message()
            wanted = "not a decodable image" if kind == "bad file" else "request parameter conf='high'"
            assert wanted in answer.message()
    assert triton.is_ready()
