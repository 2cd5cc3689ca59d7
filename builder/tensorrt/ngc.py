"""The NGC release the Docker images pin: the serving image and the build image must share it,
because a TensorRT engine loads only under the TensorRT version that built it.

docker/build.Dockerfile, docker/serve.Dockerfile and compose.yaml name the same release (tests/docker
checks they agree); the training images pin their own PyTorch base.
"""

from __future__ import annotations

NGC_RELEASE = "24.10"  # Triton 2.51, the same server as the nvidia-pytriton 0.7.0 wheel seg-serve runs
TENSORRT_VERSION = (
    "10.5.0"  # in both nvcr.io/nvidia/tritonserver:24.10-py3 and nvcr.io/nvidia/tensorrt:24.10-py3
)
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{NGC_RELEASE}-py3"
TENSORRT_IMAGE = f"nvcr.io/nvidia/tensorrt:{NGC_RELEASE}-py3"
BUILD_IMAGE = f"segstack-build:{NGC_RELEASE}"  # docker/build.Dockerfile, tagged by compose.yaml
SERVE_IMAGE = f"segstack-serve:{NGC_RELEASE}"  # docker/serve.Dockerfile
