# The training image: NGC PyTorch (CUDA PyTorch, cuDNN, NCCL) with this project and its [train]
# extra; the entry point starts TensorBoard on /trainings beside the command (train-entrypoint.sh).
# Build: docker compose build train   (or docker build -f docker/train.Dockerfile -t segstack-train:24.12 .)
# Run:   docker compose run --rm --service-ports train seg-train yolo --data /datasets/... (README: Training in a container)
# No weights are fetched here: `--model yolov8x-seg.pt` downloads at run time, into /trainings.
#
# PYTORCH_RELEASE is not the NGC_RELEASE of build/serve.Dockerfile (no engine is built here): the
# PyTorch of NGC 24.10 is 2.5.0a0, a pre-release below the [train] extra's torch>=2.5, so pip would
# replace it; 24.12's is 2.6.0a0, with the same CUDA 12.6 (driver >= 560).
ARG PYTORCH_RELEASE=24.12
FROM nvcr.io/nvidia/pytorch:${PYTORCH_RELEASE}-py3

# libGL and glib for OpenCV (ultralytics installs opencv-python, not the headless build); venv
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# OMP_NUM_THREADS=1 and MKL_THREADING_LAYER=GNU as ultralytics' images set them: one OpenMP
# thread per process (DDP starts one per GPU, DataLoader workers more) and no "MKL_THREADING_LAYER=INTEL
# is incompatible with libgomp" under DDP. The caches go to /cache (any user may write there), so
# the image runs as well under --user "$(id -u):$(id -g)" as under its own user.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    OMP_NUM_THREADS=1 \
    MKL_THREADING_LAYER=GNU \
    XDG_CACHE_HOME=/cache \
    XDG_CONFIG_HOME=/cache/config \
    YOLO_CONFIG_DIR=/cache/ultralytics \
    WANDB_CONFIG_DIR=/cache/config/wandb \
    WANDB_CACHE_DIR=/cache/wandb \
    MPLCONFIGDIR=/tmp/matplotlib
# A virtual environment that still sees the base image's PyTorch, torchvision and numpy.
RUN python3 -m venv --system-site-packages /opt/venv

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
# The project and its [train] extra, held to the base image's torch, torchvision and numpy (the
# PyTorch build is compiled against that numpy; newer OpenCV wheels would want numpy 2): pip
# resolves around them instead of replacing them, and the build fails if it cannot.
# hadolint ignore=DL3013
RUN python -c "import numpy, torch, torchvision; print(f'torch=={torch.__version__}\ntorchvision=={torchvision.__version__}\nnumpy=={numpy.__version__}')" \
        > /opt/segstack/base-constraints.txt \
    && pip install --constraint /opt/segstack/base-constraints.txt ".[train]" \
    && python -c "import cv2, numpy, torch; torch.from_numpy(numpy.zeros(2)); print('torch', torch.__version__, 'OpenCV', cv2.__version__)"

# An unprivileged user, uid 1000 (Ubuntu 24.04 bases ship `ubuntu` with it); /cache writable by
# any uid; ultralytics' Arial.ttf is matplotlib's DejaVu Sans, so plots never download a font.
RUN if id ubuntu >/dev/null 2>&1; then userdel ubuntu && rm -rf /home/ubuntu; fi \
    && useradd --create-home --uid 1000 --user-group --shell /bin/bash trainer \
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
