"""Every family's network gets a profile that fits its real input, and calibration batches that fit
the profile: checked on the loaded checkpoints, before any TensorRT would run."""

import numpy as np
import pytest

from builder import families
from builder.families import LoadRequest
from builder.tensorrt.image_feeds import ImageFeeds, image_files
from builder.tensorrt.loaders import engine_loaders
from builder.tensorrt.options import BatchProfile, EngineOptions
from tests.conftest import MODEL


@pytest.fixture(scope="module")
def smp_checkpoint(tmp_path_factory):
    from tests.fixtures.random_checkpoints import make_random_smp

    return make_random_smp(tmp_path_factory.mktemp("smp") / "nhwc.pth")


@pytest.mark.parametrize("which", ["yolo", "smp-nhwc"])
def test_profile_and_calibration_batches_fit_the_network(
    which, yolo_checkpoint, smp_checkpoint, sample_images
):
    request = (
        LoadRequest(MODEL, yolo_checkpoint)
        if which == "yolo"
        else LoadRequest("smp", smp_checkpoint, nhwc=True)
    )
    family = families.resolve(request.model)
    loaded = family.load(request)
    sample = family.sample_inputs(loaded)[0]
    inputs = {loaded.input_names[0]: tuple(sample.shape[1:])}
    options = EngineOptions("fp16", BatchProfile(1, 2, 4))
    save = engine_loaders(
        sample_images / "m.onnx", sample_images / "m.plan", inputs, options, sample_images / "t"
    )
    (profile,) = save._engine._config._config.profiles
    shapes = profile[loaded.input_names[0]]
    assert shapes.opt == (2, *sample.shape[1:]) and shapes.max == (4, *sample.shape[1:])
    feeds = ImageFeeds(image_files(sample_images), family.input_spec(loaded), loaded.input_names[0], 2)
    batch = next(iter(feeds))[loaded.input_names[0]]
    assert batch.shape == shapes.opt and batch.dtype == np.float32
    if which == "smp-nhwc":
        assert loaded.input_names == ["input_1"] and batch.shape[-1] == 3
