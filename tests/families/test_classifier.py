"""classifier (timm, from seg-train classify checkpoints): the served probabilities equal the
PyTorch network's softmax on the same prepared image (|Δ| ≤ 1e-3, same top-1), and the
classification extension names the same top-2. seg-client infer has no classification writer
yet, so ``served`` asks the ensemble with tritonclient and writes one JSON record per image; the
deeper serving checks (the segment ensemble, bad segments) are in
tests/integration/test_classifier_serving.py, whose helpers this file shares."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from builder import triton_config
from builder.errors import BuildError
from builder.families import BuildSettings, LoadRequest
from builder.families.classifier import ClassifierFamily
from builder.runtimes import io_specs
from segcontract import tasks
from tests.families.base import FamilyTestBase
from tests.integration.test_classifier_serving import (
    CLASS_NAMES,
    IMGSZ,
    NAME,
    Reference,
    assert_same_probabilities,
    classify,
    make_checkpoint,
    parse_classes,
    write_images,
)


class TestClassifier(FamilyTestBase):
    family = ClassifierFamily()
    model_name = "classifier"
    served_name = NAME
    class_names = CLASS_NAMES
    input_size = (IMGSZ, IMGSZ)
    input_names = ("input",)
    output_names = (tasks.PROBABILITIES_NAME,)
    build_args = ("--name", NAME)

    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, tmp_path_factory):
        return make_checkpoint(tmp_path_factory.mktemp("classifier"))

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls, tmp_path_factory):
        return write_images(tmp_path_factory.mktemp("classifier_images"))

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, server, images, tmp_path_factory):
        """One record per image: the probabilities and the top-2 of the classification extension."""
        out = tmp_path_factory.mktemp("classifier-served")
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for path in sorted(p for p in images.iterdir() if p.is_file()):
            probabilities, sizes = classify(client, [path.read_bytes()], cls.served_name)
            top2, _ = classify(client, [path.read_bytes()], cls.served_name, class_count=2)
            record = {
                "probabilities": probabilities[0].tolist(),
                "image_size": sizes[0].tolist(),
                "top2": [list(entry) for entry in parse_classes(top2[0])],
            }
            (out / f"{path.stem}.json").write_text(json.dumps(record))
        return out

    @classmethod
    def make_reference(cls, checkpoint):
        return Reference(checkpoint)

    def check_parity(self, served, images, reference):
        assert len(images) >= 5
        for image in images:
            record = json.loads((served / f"{image.stem}.json").read_text())
            expected = reference.file_probabilities(image)
            assert_same_probabilities(np.float32(record["probabilities"]), expected, image.name)
            top2 = [int(i) for i in np.argsort(-expected)[:2]]
            assert [(i, label) for _, i, label in record["top2"]] == [(i, CLASS_NAMES[i]) for i in top2]

    # --- what only this family has ------------------------------------------------------------
    def test_model_names(self):
        assert self.family.matches("classifier") and self.family.matches("classifier-shapes")
        assert not self.family.matches("classifiers") and not self.family.matches("smp")

    @pytest.mark.parametrize(
        ("request_size", "input_size"), [({"imgsz": 64}, (64, 64)), ({"size": (128, 64)}, (64, 128))]
    )
    def test_imgsz_and_size_override_the_checkpoints_input(self, checkpoint, request_size, input_size):
        loaded = self.family.load(LoadRequest(self.model_name, checkpoint, **request_size))
        spec = self.family.input_spec(loaded)
        assert loaded.input_size == input_size == (spec.height, spec.width)
        assert spec.resize == "stretch" and spec.layout == "CHW"

    def test_record_and_server_models(self, loaded, samples):
        metadata = self.family.metadata(loaded, BuildSettings(NAME))
        assert metadata.task is tasks.Task.CLASSIFICATION and metadata.thresholds is None
        assert metadata.extra["arch"] == "resnet18" and metadata.extra["segment_margin"] == 0.1
        assert tuple(metadata.input.mean) == (0.485, 0.456, 0.406)
        with torch.no_grad():
            outputs = [loaded.module(torch.from_numpy(samples[0][:1])).numpy()]
        model_io = (io_specs(loaded.input_names, [samples[0][:1]]), io_specs(loaded.output_names, outputs))
        folders = {f.name: f for f in self.family.server_models(loaded, model_io, BuildSettings(NAME))}
        segment = tasks.segment_ensemble_name(NAME)
        assert set(folders) == {NAME, f"{NAME}_preprocess", segment, f"{segment}_preprocess"}
        for ensemble in (NAME, segment):
            assert folders[ensemble].texts == {tasks.LABELS_FILE: "circle\nsquare\ntriangle\n"}
            labels = {o.name: o.label_filename for o in folders[ensemble].config.output}
            assert labels == {tasks.PROBABILITIES_NAME: tasks.LABELS_FILE, tasks.IMAGE_SIZE.name: ""}
            steps = [s.model_name for s in folders[ensemble].config.ensemble_scheduling.step]
            assert steps == [f"{ensemble}_preprocess", f"{NAME}_model"]
        assert folders[f"{segment}_preprocess"].files["1/model.py"].name == "segment_preprocess.py"
        assert folders[f"{NAME}_preprocess"].files["1/model.py"].name == "image_preprocess.py"
        assert np.allclose(outputs[0].sum(1), 1, atol=1e-5)  # the softmax is in the network

    def test_other_checkpoints_name_the_model_they_need(self, checkpoint, tmp_path, yolo_checkpoint):
        from builder import families
        from tests.integration.test_semantic_serving import _checkpoint as smp_checkpoint

        smp = smp_checkpoint(tmp_path / "shapes.pth", size=(64, 64))
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
