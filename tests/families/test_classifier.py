"""classifier (timm, from seg-train classify checkpoints): the served probabilities equal the
PyTorch network's softmax on the same prepared image (|Δ| ≤ 1e-3, same top-1), in the records
seg-client infer writes (through Triton's classification extension); the deeper serving checks
(the segment ensemble, bad segments) are in tests/integration/test_classifier_serving.py; the
helpers both use are in tests/helpers.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from builder import triton_config
from builder.errors import BuildError
from builder.families import BuildSettings, LoadRequest
from builder.families.classifier import ClassifierFamily
from builder.runtimes import io_specs
from segcontract import tasks
from tests.conftest import run_cli
from tests.families.base import FamilyTestBase
from tests.helpers import (
    CLASSIFIER_CLASS_NAMES,
    CLASSIFIER_IMGSZ,
    CLASSIFIER_NAME,
    ClassifierReference,
    assert_same_probabilities,
    build_classifier_repository,
    make_classifier_checkpoint,
    write_classifier_images,
)
from tests.schema_check import validate

try:
    import tensorrt  # noqa: F401

    HAVE_TENSORRT = True
except ImportError:
    HAVE_TENSORRT = False


class TestClassifier(FamilyTestBase):
    family = ClassifierFamily()
    model_name = "classifier"
    served_name = CLASSIFIER_NAME
    class_names = CLASSIFIER_CLASS_NAMES
    input_size = (CLASSIFIER_IMGSZ, CLASSIFIER_IMGSZ)
    input_names = ("input",)
    output_names = (tasks.PROBABILITIES_NAME,)
    build_args = ("--name", CLASSIFIER_NAME)
    client_args = ("--top-k", str(len(CLASSIFIER_CLASS_NAMES)))

    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, tmp_path_factory):
        return make_classifier_checkpoint(tmp_path_factory.mktemp("classifier"))

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls, tmp_path_factory):
        return write_classifier_images(tmp_path_factory.mktemp("classifier_images"))

    @classmethod
    def make_reference(cls, checkpoint):
        return ClassifierReference(checkpoint)

    def check_parity(self, served, images, reference):
        """seg-client's records: every class's score within 1e-3 of the network's softmax, ranked
        as the network ranks them (Triton's classification extension orders and names them)."""
        assert len(images) >= 5
        for image in images:
            record = json.loads((served / f"{image.stem}.json").read_text())
            validate(record, "image_record")
            expected = reference.file_probabilities(image)
            scores = np.zeros(len(CLASSIFIER_CLASS_NAMES), np.float32)
            for entry in record["classes"]:
                scores[entry["class_id"]] = entry["score"]
                assert entry["class_name"] == CLASSIFIER_CLASS_NAMES[entry["class_id"]]
            assert_same_probabilities(scores, expected, image.name)
            assert [c["class_id"] for c in record["classes"][:2]] == [
                int(i) for i in np.argsort(-expected)[:2]
            ]

    # --- what only this family has ------------------------------------------------------------
    def test_model_names(self):
        assert self.family.matches("classifier") and self.family.matches("classifier-shapes")
        assert not self.family.matches("classifiers") and not self.family.matches("smp")

    @pytest.mark.parametrize(
        ("request_size", "input_size"), [({"imgsz": 64}, (64, 64)), ({"size": (128, 64)}, (64, 128))]
    )
    def test_imgsz_and_size_override_the_checkpoints_input(
        self, checkpoint, request_size, input_size, caplog
    ):
        with caplog.at_level("WARNING", logger="build-repo"):
            loaded = self.family.load(LoadRequest(self.model_name, checkpoint, **request_size))
        assert f"was trained at {CLASSIFIER_IMGSZ}x{CLASSIFIER_IMGSZ} (WxH)" in caplog.text
        spec = self.family.input_spec(loaded)
        assert loaded.input_size == input_size == (spec.height, spec.width)
        assert spec.resize == "stretch" and spec.layout == "CHW"

    def test_record_and_server_models(self, loaded, samples):
        metadata = self.family.metadata(loaded, BuildSettings(CLASSIFIER_NAME))
        assert metadata.task is tasks.Task.CLASSIFICATION and metadata.thresholds is None
        assert metadata.extra["arch"] == "resnet18" and metadata.extra["segment_margin"] == 0.1
        assert tuple(metadata.input.mean) == (0.485, 0.456, 0.406)
        with torch.no_grad():
            outputs = [loaded.module(torch.from_numpy(samples[0][:1])).numpy()]
        model_io = (io_specs(loaded.input_names, [samples[0][:1]]), io_specs(loaded.output_names, outputs))
        folders = {
            f.name: f for f in self.family.server_models(loaded, model_io, BuildSettings(CLASSIFIER_NAME))
        }
        segment = tasks.segment_ensemble_name(CLASSIFIER_NAME)
        assert set(folders) == {
            CLASSIFIER_NAME,
            f"{CLASSIFIER_NAME}_preprocess",
            segment,
            f"{segment}_preprocess",
        }
        for ensemble in (CLASSIFIER_NAME, segment):
            assert folders[ensemble].texts == {tasks.LABELS_FILE: "circle\nsquare\ntriangle\n"}
            labels = {o.name: o.label_filename for o in folders[ensemble].config.output}
            assert labels == {tasks.PROBABILITIES_NAME: tasks.LABELS_FILE, tasks.IMAGE_SIZE.name: ""}
            steps = [s.model_name for s in folders[ensemble].config.ensemble_scheduling.step]
            assert steps == [f"{ensemble}_preprocess", f"{CLASSIFIER_NAME}_model"]
        assert folders[f"{segment}_preprocess"].files["1/model.py"].name == "segment_preprocess.py"
        assert folders[f"{CLASSIFIER_NAME}_preprocess"].files["1/model.py"].name == "image_preprocess.py"
        assert np.allclose(outputs[0].sum(1), 1, atol=1e-5)  # the softmax is in the network

    def test_other_checkpoints_name_the_model_they_need(self, checkpoint, tmp_path, yolo_checkpoint):
        from builder import families
        from tests.fixtures.random_checkpoints import make_random_smp

        smp = make_random_smp(tmp_path / "shapes.pth", size=(64, 64))
        with pytest.raises(BuildError, match="use --model smp"):
            self.family.load(LoadRequest("classifier", smp))
        with pytest.raises(BuildError, match="use --model yolov8n-seg"):
            self.family.load(LoadRequest("classifier", yolo_checkpoint))
        for model in ("smp", "yolov8n-seg"):
            with pytest.raises(BuildError, match="use --model classifier"):
                families.resolve(model).load(LoadRequest(model, checkpoint))
        with pytest.raises(BuildError, match="needs --weights"):
            self.family.load(LoadRequest("classifier"))
        (tmp_path / "text.ckpt").write_text("not a checkpoint")
        with pytest.raises(BuildError, match="not a loadable checkpoint"):
            self.family.load(LoadRequest("classifier", tmp_path / "text.ckpt"))


def test_label_files_only_for_declared_outputs():
    spec = tasks.postprocess_outputs(tasks.Task.CLASSIFICATION, 3)[0]
    settings = triton_config.ModelSettings("m", [tasks.IMAGE], [spec], 4, label_files={spec.name: "l.txt"})
    assert triton_config.python_model_config(settings).output[0].label_filename == "l.txt"
    assert 'label_filename: "l.txt"' in triton_config.to_text(triton_config.python_model_config(settings))
    with pytest.raises(ValueError, match="not there"):
        triton_config.ensemble_config("e", [tasks.IMAGE], [spec], [], 4, label_files={"scores": "l.txt"})


def test_onnx_runtime_serves_the_network_with_onnxruntime_and_keeps_the_labels(tmp_path):
    """--runtime onnx: the network in Triton's onnxruntime backend; the ensembles, their labels
    file and the preprocessing are the same as with python-onnx."""
    checkpoint = make_classifier_checkpoint(tmp_path)
    repo = tmp_path / "repo"
    build_classifier_repository(checkpoint, repo, runtime="onnx")
    model = triton_config.parse((repo / f"{CLASSIFIER_NAME}_model" / "config.pbtxt").read_text())
    assert (
        model.platform == "onnxruntime_onnx"
        and (repo / f"{CLASSIFIER_NAME}_model" / "1" / "model.onnx").is_file()
    )
    assert [o.name for o in model.output] == [tasks.PROBABILITIES_NAME]
    assert list(model.output[0].dims) == [len(CLASSIFIER_CLASS_NAMES)]
    for ensemble in (CLASSIFIER_NAME, tasks.segment_ensemble_name(CLASSIFIER_NAME)):
        config = triton_config.parse((repo / ensemble / "config.pbtxt").read_text())
        assert config.output[0].label_filename == tasks.LABELS_FILE
        assert (repo / ensemble / tasks.LABELS_FILE).read_text().splitlines() == list(CLASSIFIER_CLASS_NAMES)


@pytest.mark.skipif(
    HAVE_TENSORRT,
    reason="TensorRT imports here: the engine build runs instead of refusing",
)
def test_tensorrt_runtime_without_tensorrt_is_one_line_and_the_docker_run_line(tmp_path):
    checkpoint = make_classifier_checkpoint(tmp_path)
    proc = run_cli(
        "build-repo",
        "--model",
        "classifier",
        "--weights",
        str(checkpoint),
        "--runtime",
        "tensorrt",
        "--output",
        str(tmp_path / "repo"),
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (error,) = proc.stderr.strip().splitlines()
    assert error.startswith("build-repo: error: --runtime tensorrt needs TensorRT")
    assert proc.stdout.startswith("docker run") and not (tmp_path / "repo").exists()
