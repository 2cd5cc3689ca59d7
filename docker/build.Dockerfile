# The build image: NGC TensorRT (the same TensorRT as tritonserver of the same release) with this
# project installed; its entry point is build-repo.
# Build: docker compose build build   (or docker build -f docker/build.Dockerfile -t segstack-build:24.10 .)
# Run:   docker run --rm --gpus all -v "$PWD:$PWD" -w "$PWD" segstack-build:24.10 --model ... --runtime tensorrt --fp16
ARG NGC_RELEASE=24.10
FROM nvcr.io/nvidia/tensorrt:${NGC_RELEASE}-py3

# libGL and glib for OpenCV (ultralytics installs opencv-python, not the headless build); venv
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# A virtual environment that still sees the base image's TensorRT Python package.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=/cache \
    YOLO_CONFIG_DIR=/cache/ultralytics \
    MPLCONFIGDIR=/tmp/matplotlib
RUN python3 -m venv --system-site-packages /opt/venv \
    && mkdir -p /cache \
    && chmod 1777 /cache

# ONNX export runs on the CPU: the CPU build of torch keeps the image gigabytes smaller.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.5,<2.16" "torchvision<0.31"

WORKDIR /opt/segstack
COPY pyproject.toml README.md ./
COPY builder builder
COPY clients clients
COPY serving serving
COPY training training
COPY segcontract segcontract
COPY annotations annotations
COPY store store
COPY segops segops
COPY python_backend_models python_backend_models
COPY model_checkpoints model_checkpoints
COPY tests tests
# the project itself: its dependencies are the ranges pyproject.toml gives (tests included: pytest runs here)
# hadolint ignore=DL3013
RUN pip install ".[dev]" && python -c "import tensorrt, polygraphy; print('TensorRT', tensorrt.__version__)"

WORKDIR /workspace
ENTRYPOINT ["build-repo"]
CMD ["--help"]
