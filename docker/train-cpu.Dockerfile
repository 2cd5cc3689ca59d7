# The training image for machines without a GPU: python:slim, the CPU build of PyTorch (the
# PyTorch index), this project and its [train] extra; the same entry point, user and folders as
# docker/train.Dockerfile (TensorBoard on /trainings beside the command).
# Build: docker compose build train-cpu   (or docker build -f docker/train-cpu.Dockerfile -t segstack-train:cpu .)
# Run:   docker compose run --rm --service-ports train-cpu seg-train yolo --device cpu --data /datasets/...
# No weights are fetched here: `--model yolov8n-seg.pt` downloads at run time, into /trainings.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# libGL and glib for OpenCV (ultralytics installs opencv-python, not the headless build)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# MKL_THREADING_LAYER=GNU as ultralytics' images set it. OMP_NUM_THREADS is left unset: on a CPU
# the training itself is what the cores are for (ultralytics sets 1 when it is unset and
# resets torch's threads for a CPU training; -e OMP_NUM_THREADS=N chooses for the other trainers).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MKL_THREADING_LAYER=GNU \
    XDG_CACHE_HOME=/cache \
    XDG_CONFIG_HOME=/cache/config \
    YOLO_CONFIG_DIR=/cache/ultralytics \
    WANDB_CONFIG_DIR=/cache/config/wandb \
    WANDB_CACHE_DIR=/cache/wandb \
    MPLCONFIGDIR=/tmp/matplotlib

# The CPU build of torch first (the registry's default wheel carries CUDA, gigabytes of it); the
# [train] extra's torch>=2.5,<2.16 is then already met.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.5,<2.16" "torchvision<0.31"

WORKDIR /opt/segstack
COPY pyproject.toml README.md ./
COPY training training
COPY segcontract segcontract
COPY segops segops
COPY annotations annotations
COPY store store
COPY model_checkpoints model_checkpoints
COPY builder builder
COPY clients clients
COPY serving serving
COPY review review
COPY python_backend_models python_backend_models
# hadolint ignore=DL3013
RUN pip install ".[train]" \
    && python -c "import cv2, torch; assert torch.version.cuda is None, torch.__version__; print('torch', torch.__version__, 'OpenCV', cv2.__version__)"

# The same unprivileged user (uid 1000), /cache writable by any uid, and the plots' font
RUN useradd --create-home --uid 1000 --user-group --shell /bin/bash trainer \
    && mkdir -p /cache/ultralytics/Ultralytics /datasets /trainings \
    && python -c "import matplotlib, shutil; shutil.copy(f'{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf', '/cache/ultralytics/Ultralytics/Arial.ttf')" \
    && chmod 1777 /cache /cache/ultralytics /cache/ultralytics/Ultralytics \
    && chown trainer:trainer /datasets /trainings

COPY docker/train-entrypoint.sh /usr/local/bin/train-entrypoint
USER 1000:1000
WORKDIR /trainings
EXPOSE 6006
ENTRYPOINT ["bash", "/usr/local/bin/train-entrypoint"]
CMD ["seg-train", "--help"]
