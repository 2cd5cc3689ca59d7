"""seg-train semantic and color-mask: training, resume, missing checkpoint, checkpoint contents."""

import json
import re

import numpy as np
import pytest
import torch

from model_checkpoints.smp import FORMAT, load_checkpoint
from tests.conftest import run_cli
from tests.fixtures.synthetic import write_semantic_dataset
from tests.schema_check import validate_run_record


@pytest.fixture(scope="module")
def semantic_data(tmp_path_factory):
    return write_semantic_dataset(tmp_path_factory.mktemp("semantic") / "data", 10, np.random.default_rng(0))


def _train(data, out, *extra, check=True):
    return run_cli(
        "seg-train",
        "semantic",
        "--data_root",
        str(data),
        "--num_classes",
        "4",
        "--model_name",
        "shapes",
        "--batch-size",
        "4",
        "--size",
        "96",
        "64",
        "--output-dir",
        str(out),
        "--workers",
        "0",
        *extra,
        check=check,
        timeout=900,
    )


@pytest.mark.slow
def test_trains_saves_a_self_describing_checkpoint_and_resumes(semantic_data, tmp_path):
    out = tmp_path / "runs"
    proc = _train(semantic_data, out, "--epochs", "1", "--use-mixup")
    best, last = out / "shapes" / "best.pth", out / "shapes" / "last.pth"
    assert best.is_file() and last.is_file()
    assert "val mIoU" in proc.stderr and f"build-repo --model smp --weights {best}" in proc.stdout
    payload = torch.load(best, weights_only=True)  # plain tensors, numbers and strings
    assert payload["format"] == FORMAT and payload["epoch"] == 1
    json.dumps(payload["info"])  # the description holds no tensors or objects
    info, _ = load_checkpoint(best)
    assert (info.arch, info.encoder, info.num_classes) == ("Unet", "efficientnet-b0", 4)
    assert info.class_names == ["background", "circle", "rectangle", "triangle"]
    assert info.colors[1] == [230, 25, 75] and info.input_size == (96, 64)
    assert list((out / "shapes" / "tensorboard").glob("events.out.tfevents*"))
    run = validate_run_record(out / "shapes", "semantic")  # run.json: what made the run, its result
    logged = float(re.findall(r"val mIoU (\d\.\d+)", proc.stderr)[-1])
    assert run["final_metrics"]["val_mIoU"] == pytest.approx(logged, abs=1e-4)
    assert run["final_metrics"]["epoch"] == 1 and run["arguments"]["use_mixup"] is True
    assert run["dataset"]["path"] == str(semantic_data) and run["dataset"]["files"] > 10

    resumed = _train(semantic_data, out, "--epochs", "2", "--model", str(last))
    assert (
        "resuming from" in resumed.stderr
        and "epoch 2/2" in resumed.stderr
        and "epoch 1/2" not in resumed.stderr
    )
    assert torch.load(last, weights_only=True)["epoch"] == 2
    again = validate_run_record(out / "shapes", "semantic")
    assert again["resumed_from"] == str(last) and again["started_at"] == run["started_at"]
    assert [a["status"] for a in again["history"]] == ["finished", "finished"]
    assert again["final_metrics"]["epoch"] == 2 and again["dataset"]["sha256"] == run["dataset"]["sha256"]


@pytest.mark.slow
def test_missing_checkpoint_warns_and_trains_from_scratch(semantic_data, tmp_path):
    proc = _train(semantic_data, tmp_path / "runs", "--epochs", "1", "--model", str(tmp_path / "nope.pth"))
    assert "nope.pth does not exist: training from scratch" in proc.stderr
    assert (tmp_path / "runs" / "shapes" / "best.pth").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "cls"], "--mode 'cls' is not supported"),
        (["--num_classes", "5"], "4 classes, but --num-classes is 5"),
    ],
)
def test_user_mistakes_are_one_line(semantic_data, tmp_path, extra, message):
    proc = _train(semantic_data, tmp_path / "runs", "--epochs", "1", *extra, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and message in proc.stderr


@pytest.mark.slow
def test_color_mask_writes_visualisations(semantic_data, tmp_path):
    out = tmp_path / "runs"
    _train(semantic_data, out, "--epochs", "1")
    vis = tmp_path / "vis"
    proc = run_cli(
        "seg-train",
        "color-mask",
        "--images_path",
        str(semantic_data / "images"),
        "--model_name",
        str(out / "shapes" / "best.pth"),
        "--output_dir",
        str(vis),
        "--size",
        "96",
        "64",
    )
    assert "10 colour masks" in proc.stdout
    assert len(list(vis.glob("*_color_mask.png"))) == 10 and len(list(vis.glob("*_overlay.jpg"))) == 10


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "no-such-encoder"], "cannot build Unet with encoder no-such-encoder"),
        (
            ["--arch", "FPN", "--size", "100", "64"],
            "--size 100 64: FPN with efficientnet-b0 needs multiples of 32",
        ),
    ],
)
def test_bad_architecture_choices_are_one_line(semantic_data, tmp_path, extra, message):
    proc = _train(semantic_data, tmp_path / "runs", "--epochs", "1", *extra, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and message in proc.stderr


def test_mask_values_beyond_the_class_count_are_named(tmp_path):
    data = write_semantic_dataset(tmp_path / "data", 4, np.random.default_rng(1))  # indices 0..3
    (data / "colors.csv").write_text("name,r,g,b\nbg,0,0,0\na,1,1,1\nb,2,2,2\n")  # three classes
    proc = run_cli(
        "seg-train",
        "semantic",
        "--data_root",
        str(data),
        "--num_classes",
        "3",
        "--model_name",
        "x",
        "--size",
        "96",
        "64",
        "--output-dir",
        str(tmp_path / "r"),
        "--workers",
        "0",
        "--epochs",
        "1",
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "class index 3 but --num-classes is 3" in proc.stderr
