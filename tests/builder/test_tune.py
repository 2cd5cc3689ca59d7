"""build-repo tune without a server: which settings it reads and writes, and how its search
moves through them (the measurement itself is tests/integration/test_tune.py's, on a real server)."""

from __future__ import annotations

import shutil

import pytest

from builder import triton_config
from builder.errors import BuildError
from builder.quantization.guard import RECORD_FILE
from builder.quantization.options import Int8Options
from builder.tune import MIN_GAIN, STAGES, Trial, runtimes, save, search, threads
from builder.tune_runtimes import NetworkFiles, Networks
from builder.tune_settings import FP32, INT8, ONNX, OPENVINO, THREADS_KEY, ServedModel, Setting
from segcontract.model_metadata import ConfigKeys, ModelMetadata
from tests.conftest import MODEL, run_cli


@pytest.fixture
def repo(built_repository, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(built_repository, copy)
    return copy


@pytest.fixture
def ensemble_repo(ensemble_repository, tmp_path):
    copy = tmp_path / "ensemble-repo"
    shutil.copytree(ensemble_repository, copy)
    return copy


@pytest.mark.parametrize("layout", ["one model", "ensemble"])
def test_the_setting_is_read_from_the_network_and_written_into_every_model(layout, request):
    repo = request.getfixturevalue("repo" if layout == "one model" else "ensemble_repo")
    served = ServedModel.read(repo, MODEL)
    assert served.current() == Setting(instances=2, threads=None, max_batch_size=8, max_queue_delay_us=0)
    wanted = Setting(instances=3, threads=1, max_batch_size=4, max_queue_delay_us=2000)
    written = served.write(repo, wanted)
    assert len(written) == (1 if layout == "one model" else 4)
    again = ServedModel.read(repo, MODEL)
    assert again.current() == wanted
    for config in again.configs.values():
        assert config.max_batch_size == 4
        if config.platform != "ensemble":  # an ensemble has no instances of its own
            assert config.instance_group[0].count == 3
            assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert again.network.parameters[THREADS_KEY].string_value == "1"
    again.write(repo, wanted.but(threads=None))
    assert THREADS_KEY not in ServedModel.read(repo, MODEL).network.parameters


def test_preferred_batch_sizes_above_the_new_largest_batch_are_dropped(repo):
    path = repo / MODEL / "config.pbtxt"
    config = triton_config.parse(path.read_text())
    config.dynamic_batching.preferred_batch_size.extend([2, 8])
    path.write_text(triton_config.to_text(config))
    served = ServedModel.read(repo, MODEL)
    changed = served.with_setting(served.current().but(max_batch_size=4))
    assert list(changed[MODEL].dynamic_batching.preferred_batch_size) == [2]


def test_only_build_repos_python_onnx_models_are_tuned(ensemble_repo, tmp_path, yolo_checkpoint):
    for step in ("preprocess", "model"):
        with pytest.raises(BuildError, match="neither an ensemble nor one model with its network"):
            ServedModel.read(ensemble_repo, f"{MODEL}_{step}")
    (ensemble_repo / f"{MODEL}_postprocess" / ".build-repo").unlink()
    with pytest.raises(BuildError, match="not a model build-repo wrote"):
        ServedModel.read(ensemble_repo, MODEL)
    onnx = tmp_path / "onnx"
    run_cli("build-repo", "--model", MODEL, "--weights", str(yolo_checkpoint), "--output", str(onnx),
            "--runtime", "onnx", "--quiet")  # fmt: skip
    with pytest.raises(BuildError, match="python-onnx repositories"):
        ServedModel.read(onnx, MODEL)


def _measured(speed):
    """A measurement whose images/s is ``speed(setting)``, recording the order asked."""
    asked = []

    def measure(repository, served, setting, images, concurrency, network=None):
        asked.append(setting)
        return Trial(setting, throughput=speed(setting), p95_ms=10.0, seconds=0.01)

    return measure, asked


def test_the_search_varies_one_thing_at_a_time_from_the_best_so_far(repo, tmp_path):
    def speed(s: Setting) -> float:  # 4 instances win, then one thread each, then no batching
        return (
            10
            * {1: 1.0, 2: 1.2, 4: 1.5, 8: 1.4}[s.instances]
            * (1.2 if s.threads == 1 else 1.0)
            * (1.1 if s.max_batch_size == 1 else 1.0)
        )

    measure, asked = _measured(speed)
    result = search(repo, ServedModel.read(repo, MODEL), tmp_path, budget_s=300, measure=measure, cores=16)
    assert result.best.setting == Setting(instances=4, threads=1, max_batch_size=1, max_queue_delay_us=0)
    assert asked[0] == result.start.setting  # the repository's own first
    assert len(asked) == len(set(asked))  # nothing measured twice
    assert not any(s.max_queue_delay_us for s in asked)  # no batching: no queue delay to try
    assert not result.stopped_by_budget and len(STAGES) == 5


def test_a_gain_within_the_noise_keeps_the_repositorys_own_setting(repo, tmp_path):
    measure, _ = _measured(lambda s: 10.0 * (MIN_GAIN - 0.01 if s.instances == 4 else 1.0))
    result = search(repo, ServedModel.read(repo, MODEL), tmp_path, measure=measure)
    assert result.best is result.start


def test_no_trial_starts_that_would_overrun_the_budget(repo, tmp_path):
    def slow(repository, served, setting, images, concurrency, network=None):
        return Trial(setting, throughput=1.0, seconds=100.0)

    result = search(repo, ServedModel.read(repo, MODEL), tmp_path, budget_s=30, measure=slow)
    assert [t.setting for t in result.trials] == [result.start.setting] and result.stopped_by_budget


def test_a_repository_that_does_not_serve_is_one_error(repo, tmp_path):
    def broken(repository, served, setting, images, concurrency, network=None):
        return Trial(setting, error="the server did not become ready: boom")

    with pytest.raises(BuildError, match="does not serve: the server did not become ready"):
        search(repo, ServedModel.read(repo, MODEL), tmp_path, measure=broken)


def test_thread_counts_that_come_to_the_same_on_these_cores_are_measured_once():
    two = Setting(instances=2, threads=None, max_batch_size=8, max_queue_delay_us=0)
    assert [s.threads for s in threads(two, cores=2)] == [None, 0]  # one each is the share here
    assert [s.threads for s in threads(two.but(instances=1), cores=2)] == [None, 1]  # all is the share
    assert [s.threads for s in threads(two, cores=16)] == [None, 0, 1]


OWN = Setting(instances=2, threads=None, max_batch_size=8, max_queue_delay_us=0)


def test_the_runtime_comes_first_and_proposes_openvino_fp32_and_int8():
    assert [stage.__name__ for stage in STAGES] == [
        "runtimes", "instances", "threads", "batch_sizes", "queue_delays"
    ]  # fmt: skip
    assert [s.network for s in runtimes(OWN, cores=4)] == [(OPENVINO, FP32), (OPENVINO, INT8)]
    assert all(s.but(runtime=ONNX, precision=FP32) == OWN for s in runtimes(OWN, cores=4))
    ov = OWN.but(runtime=OPENVINO)
    assert [s.network for s in runtimes(ov, cores=4)] == [(ONNX, FP32), (OPENVINO, INT8)]


def test_the_setting_shows_its_runtime_and_precision():
    int8 = OWN.but(runtime=OPENVINO, precision=INT8)
    assert OWN.label().startswith("python-onnx FP32, instances 2")
    assert int8.label().startswith("python-openvino INT8, instances 2")
    assert int8.to_dict()["runtime"] == OPENVINO and int8.to_dict()["precision"] == INT8
    assert Setting(**int8.to_dict()) == int8


def _networks(repo, tmp_path, calibration: bool, made=None):
    """Networks whose files are ``made(runtime, precision)`` (default: an empty set) instead of
    converted and quantized."""
    int8 = None
    if calibration:
        (tmp_path / "calibration").mkdir(exist_ok=True)
        int8 = Int8Options(tmp_path / "calibration")
    served = ServedModel.read(repo, MODEL)
    networks = Networks(repo, served, tmp_path, tmp_path, int8)
    networks._make = made or (lambda runtime, precision: NetworkFiles({}))
    return served, networks


@pytest.mark.parametrize("calibration", [False, True])
def test_int8_is_tried_only_with_calibration_images(repo, tmp_path, calibration):
    served, networks = _networks(repo, tmp_path, calibration)
    measure, asked = _measured(lambda s: 10.0)
    result = search(repo, served, tmp_path, measure=measure, cores=4, networks=networks)
    tried = {s.network for s in asked}
    assert (OPENVINO, FP32) in tried and ((OPENVINO, INT8) in tried) == calibration
    assert any("INT8 not tried: no --calibration-images" in n for n in result.notes) != calibration


def test_the_later_stages_run_on_the_chosen_runtime(repo, tmp_path):
    served, networks = _networks(repo, tmp_path, calibration=True)
    measure, asked = _measured(lambda s: 20.0 if s.runtime == OPENVINO and s.precision == FP32 else 10.0)
    result = search(repo, served, tmp_path, measure=measure, cores=4, networks=networks)
    assert result.best.setting.network == (OPENVINO, FP32)
    assert all(s.network == (OPENVINO, FP32) for s in asked[3:]) and len(asked) > 3


def test_a_network_that_cannot_be_made_is_a_failed_trial_and_the_search_goes_on(repo, tmp_path):
    from builder.errors import BuildError

    def made(runtime, precision):
        if precision == INT8:
            raise BuildError("--int8 refused: mask mAP50 against FP32 3.00 on 2 held-out images")
        return NetworkFiles({})

    served, networks = _networks(repo, tmp_path, calibration=True, made=made)
    measure, asked = _measured(lambda s: 10.0)
    result = search(repo, served, tmp_path, measure=measure, cores=4, networks=networks)
    (failed,) = [t for t in result.trials if t.error]
    assert failed.setting.precision == INT8 and failed.error.startswith("--int8 refused")
    assert failed.setting not in asked and any(s.instances != 2 for s in asked)  # measured on


def test_int8_that_the_budget_cannot_hold_is_skipped_with_a_note(repo, tmp_path):
    served, networks = _networks(repo, tmp_path, calibration=True)
    networks.making_s = lambda network: 1000.0 if network[1] == INT8 else 0.0
    measure, asked = _measured(lambda s: 10.0)
    result = search(repo, served, tmp_path, budget_s=300, measure=measure, cores=4, networks=networks)
    assert INT8 not in {s.precision for s in asked} and len(asked) > 2  # the others were measured
    assert any("INT8 not tried: making its network (about 1000 s)" in n for n in result.notes)


def test_the_winning_network_is_written_into_the_repository(repo, tmp_path):
    xml, weights = tmp_path / "model.xml", tmp_path / "model.bin"
    xml.write_text("<net/>")
    weights.write_bytes(b"\0" * 8)
    record = {"network_runtime": OPENVINO, "precision": INT8, "int8_drop": 0.5}

    def made(runtime, precision):
        return NetworkFiles({"1/model.xml": xml, "1/model.bin": weights}, {RECORD_FILE: "{}"}, (), record)

    served, networks = _networks(repo, tmp_path, calibration=True, made=made)
    measure, _ = _measured(lambda s: 20.0 if s.precision == INT8 else 10.0)
    result = search(repo, served, tmp_path, measure=measure, cores=4, networks=networks)
    assert result.best.setting.network == (OPENVINO, INT8)
    save(repo, served, result, apply=True, networks=networks)
    again = ServedModel.read(repo, MODEL)
    assert again.current() == result.best.setting
    assert again.network.parameters[ConfigKeys.NETWORK_MODULE].string_value == "openvino_model"
    assert again.network.parameters["int8_drop"].string_value == "0.5"
    metadata = ModelMetadata.from_parameters(
        {k: v.string_value for k, v in again.configs[MODEL].parameters.items()}
    )
    assert metadata.extra["precision"] == INT8 and metadata.extra["int8_drop"] == 0.5
    folder = repo / MODEL / "1"
    assert (folder / "model.xml").read_text() == "<net/>" and (folder / "model.onnx").is_file()
    assert (repo / MODEL / RECORD_FILE).read_text() == "{}"
