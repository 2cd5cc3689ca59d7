"""seg-client bench: perf_analyzer with real image payloads against the served model (the one
Python model of the defaults, and an ensemble with its composing models)."""

import json

from tests.conftest import MODEL, run_cli


def test_bench_reports_throughput_latency_and_the_composing_models(ensemble_triton, sample_images, tmp_path):
    proc = run_cli(
        "seg-client",
        "bench",
        "--model",
        MODEL,
        "--url",
        ensemble_triton.grpc_url,
        "--images",
        str(sample_images),
        "--concurrency",
        "1:2",
        "--windows-of",
        "3",
        "--stability",
        "50",
        "--out",
        str(tmp_path),
        timeout=900,
    )
    results = json.loads((tmp_path / f"perf_{MODEL}.json").read_text())
    assert [r["concurrency"] for r in results] == [1, 2]
    for r in results:
        assert r["throughput"] > 0 and r["p50_ms"] <= r["p99_ms"]
        assert set(r["composing"]) == {f"{MODEL}_preprocess", f"{MODEL}_model", f"{MODEL}_postprocess"}
    assert (tmp_path / f"perf_{MODEL}.csv").is_file() and (tmp_path / f"perf_{MODEL}_model.json").is_file()
    assert f"{MODEL}_postprocess: queue" in proc.stdout


def test_bench_with_system_shared_memory_on_the_one_model(triton, sample_images, tmp_path):
    """build-repo's default serves one model: measured whole; no network of its own to measure."""
    proc = run_cli(
        "seg-client",
        "bench",
        "--model",
        MODEL,
        "--url",
        triton.grpc_url,
        "--images",
        str(sample_images),
        "--concurrency",
        "1",
        "--windows-of",
        "2",
        "--stability",
        "50",
        "--shared-memory",
        "system",
        "--out",
        str(tmp_path),
        timeout=600,
    )
    assert json.loads((tmp_path / f"perf_{MODEL}.json").read_text())[0]["throughput"] > 0
    assert f"{MODEL} is one model" in proc.stdout and f"no {MODEL}_model to measure alone" in proc.stdout
    assert not (tmp_path / f"perf_{MODEL}_model.json").exists()
