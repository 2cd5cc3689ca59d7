# The serving image: NGC tritonserver (TensorRT, onnxruntime and Python backends) plus what the
# Python-backend models of a built repository import (the same file seg-serve's own env uses).
# Build: docker compose build serve   (or docker build -f docker/serve.Dockerfile -t segstack-serve:24.10 .)
# NGC_RELEASE must stay the one of build.Dockerfile: an engine loads only under the TensorRT that built it.
ARG NGC_RELEASE=24.10
FROM nvcr.io/nvidia/tritonserver:${NGC_RELEASE}-py3

COPY python_backend_models/requirements.txt /opt/segstack/python_backend-requirements.txt
RUN pip install --no-cache-dir -r /opt/segstack/python_backend-requirements.txt

EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/v2/health/ready')"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models"]
