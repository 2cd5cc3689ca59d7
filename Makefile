# `make demo` runs the main job, `make test` the tests; both set up .venv first (quick once done).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
export YOLO_OFFLINE ?= 1
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test unit bench bench-store bench-replicas bench-review bench-doubt lint clean

# everything: .[dev] is the build and train extras and the test tools (a bare `pip install segstack`
# serves and queries only)
setup: $(STAMP)

$(STAMP): pyproject.toml python_backend_models/requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m serving.tritonserver_install
	$(BIN)/python -m serving.perf_analyzer_install
	@touch $@

demo: setup
	$(BIN)/python -m demo.run

test: setup
	$(BIN)/python -m pytest -q

unit: setup
	$(BIN)/python -m pytest -q -m "not integration"

bench: setup
	$(BIN)/python -m benchmarks.report

bench-store: setup
	$(BIN)/python -m benchmarks.segment_store

bench-replicas: setup
	$(BIN)/python -m benchmarks.replicas

bench-review: setup
	$(BIN)/python -m benchmarks.review_page

bench-doubt: setup
	$(BIN)/python -m benchmarks.review_doubt

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

clean:
	rm -rf $(VENV) model_repository/*/ demo_output
