"""smp (segmentation-models-pytorch): the served class-index masks agree with the PyTorch model's
argmax (training.semantic_predict.SemanticPredictor; both resize the same way) on ≥ 99.5 % of
pixels, and the colour PNG and the record follow the server's colours and classes."""

import json

import cv2
import numpy as np
import pytest

from builder.families.smp_semantic import SmpSemanticFamily
from tests.families.base import FamilyTestBase
from tests.fixtures.random_checkpoints import SMP_COLORS, make_random_smp
from tests.helpers import write_semantic_images


class TestSmp(FamilyTestBase):
    family = SmpSemanticFamily()
    model_name = "smp"
    served_name = "shapes"
    class_names = ("background", "circle", "rectangle", "triangle")
    input_size = (96, 128)
    input_names = ("input",)
    output_names = ("logits",)
    build_args = ("--name", "shapes")
    client_args = ("--overlay",)

    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, tmp_path_factory):
        return make_random_smp(tmp_path_factory.mktemp("smp") / "shapes.pth")

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls, tmp_path_factory):
        return write_semantic_images(tmp_path_factory.mktemp("semantic_images"))

    @classmethod
    def make_reference(cls, checkpoint):
        from training.semantic_predict import SemanticPredictor

        return SemanticPredictor(checkpoint)

    def check_parity(self, served, images, reference):
        assert len(images) == 4
        agreement = []
        for image in images:
            mask = cv2.imread(str(served / f"{image.stem}.png"), cv2.IMREAD_UNCHANGED)
            expected = reference.predict(cv2.imread(str(image)))
            assert mask.shape == expected.shape and mask.dtype == np.uint8
            agreement.append(float((mask == expected).mean()))
            record = json.loads((served / f"{image.stem}.json").read_text())
            assert abs(sum(c["pixel_fraction"] for c in record["classes"]) - 1) < 1e-3
            color = cv2.imread(str(served / f"{image.stem}_color.png"))
            for c in record["classes"]:  # the colour PNG uses the server's colours
                r, g, b = SMP_COLORS[c["class_id"]]
                assert ((mask == c["class_id"]) <= np.all(color == (b, g, r), axis=-1)).all()
            assert (served / "overlays" / f"{image.stem}.jpg").is_file()
        print(f"pixel agreement per image: {[round(a, 5) for a in agreement]}")
        assert min(agreement) >= 0.995
