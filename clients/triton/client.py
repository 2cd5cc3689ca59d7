"""A tritonclient gRPC connection to a served segmentation ensemble."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from segcontract import tasks
from segcontract.errors import SegstackError
from segcontract.model_metadata import METADATA_KEY, ConfigKeys, MetadataError, ModelMetadata
from segcontract.tasks import (
    IMAGE,
    IMAGE_SIZE,
    NUM_DETECTIONS,
    PROBABILITIES_NAME,
    SEGMENT_BOX,
    SEGMENT_MASK,
    SEMANTIC_MASK_NAME,
    Task,
)

DEFAULT_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 10.0  # the most a health probe waits: Triton answers it even while busy

INVALID_ARGUMENT = "StatusCode.INVALID_ARGUMENT"
DEADLINE_EXCEEDED = "StatusCode.DEADLINE_EXCEEDED"


class ClientError(SegstackError):
    """A problem the user can fix (server unreachable, model missing...): printed as one line."""


class ServerStopped(ClientError):
    """The server stopped answering, or is going away, in the middle of a run."""


@dataclass(frozen=True)
class ModelInfo:
    """A served model as its record (segcontract.model_metadata) describes it."""

    name: str
    metadata: ModelMetadata
    parameters: dict[str, str]  # every config parameter, as an operator sees them

    @property
    def task(self) -> str:
        return self.metadata.task.value

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.class_names)

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.metadata.input.height, self.metadata.input.width)

    @property
    def colors(self) -> list[list[int]]:
        return [list(c) for c in self.metadata.colors]

    def class_name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else str(class_id)


@dataclass
class InstanceResult:
    """One image's detections as the ensemble returns them (boxes in original pixels)."""

    height: int
    width: int
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: list[bytes]  # COCO compressed RLE counts


@dataclass
class SemanticResult:
    """One image's class-index mask at its original size."""

    height: int
    width: int
    mask: np.ndarray  # (height, width) uint8 or uint16


@dataclass
class ClassificationResult:
    """One image's (or segment's) top classes, best first, as Triton's classification extension
    answers them: (score, class index, label)."""

    height: int
    width: int
    classes: list[tuple[float, int, str]]


INSTANCE_OUTPUTS = tasks.output_names(Task.INSTANCE)
SEMANTIC_OUTPUTS = tasks.output_names(Task.SEMANTIC)


class SegmentationClient:
    """``timeout_s`` bounds every request: without it a server that stops answering (hung, or
    SIGSTOP'ed) holds each request forever."""

    def __init__(
        self,
        url: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = 5.0,
        check: bool = True,
    ):
        """``check``: ask at once whether the server is live (ClientError when it is not); a
        replica set asks its replicas itself."""
        self.url = url
        self.timeout_s = timeout_s
        self._client = grpcclient.InferenceServerClient(url)
        if not check:
            return
        try:
            live = self._client.is_server_live(client_timeout=min(connect_timeout_s, timeout_s))
        except InferenceServerException as exc:
            raise ClientError(
                f"cannot reach Triton at {url} ({exc.message().splitlines()[0] if exc.message() else exc}); "
                "start it with `seg-serve --model-repository DIR` or pass --url HOST:PORT"
            ) from None
        if not live:
            raise ClientError(f"Triton at {url} is not live yet; try again when it is ready")

    def model_info(self, model: str) -> ModelInfo:
        try:
            config = self._client.get_model_config(
                model, as_json=True, client_timeout=min(self.timeout_s, PROBE_TIMEOUT_S)
            )["config"]
        except InferenceServerException as exc:
            if exc.status() != "StatusCode.NOT_FOUND" and (problem := self.health_problem()):
                raise ServerStopped(f"Triton at {self.url} {problem}") from None
            served = ", ".join(self.served_models()) or "none"
            raise ClientError(
                f"model {model!r} is not served at {self.url} ({exc.message()}); served: {served}"
            ) from None
        # JSON leaves out a parameter's empty string_value (protobuf's default): it is ""
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if METADATA_KEY not in params and ConfigKeys.TASK not in params:
            raise ClientError(
                f"model {model!r} was not built by build-repo "
                f"(no {ConfigKeys.TASK!r} parameter in its config)"
            )
        try:
            metadata = ModelMetadata.from_parameters(params)
        except MetadataError as exc:
            raise ClientError(f"model {model!r}: {exc}") from None
        return ModelInfo(name=model, metadata=metadata, parameters=params)

    def served_models(self) -> list[str]:
        index = self._client.get_model_repository_index(
            as_json=True, client_timeout=min(self.timeout_s, PROBE_TIMEOUT_S)
        ).get("models", [])
        return sorted(m["name"] for m in index if m.get("state") == "READY")

    def health_problem(self) -> str | None:
        """None when the server answers that it is ready; else what is wrong, as a phrase."""
        wait = min(self.timeout_s, PROBE_TIMEOUT_S)
        try:
            ready = self._client.is_server_ready(client_timeout=wait)
        except InferenceServerException as exc:
            if exc.status() == DEADLINE_EXCEEDED:
                return f"stopped answering (no reply to a health check within {wait:g} s)"
            return f"is gone or going away ({(exc.message() or str(exc)).splitlines()[0]})"
        except ValueError:  # the channel was closed under us (Ctrl-C)
            return "was disconnected"
        return None if ready else "is no longer ready (stopping or reloading models)"

    def infer_instances(
        self,
        model: str,
        encoded_image: bytes,
        overrides: dict[str, float | int] | None = None,
        timeout_s: float | None = None,
    ) -> InstanceResult:
        """One encoded image file → its detections. Raises InferenceServerException on a bad image."""
        image = _image_input(encoded_image)
        outputs = [grpcclient.InferRequestedOutput(n) for n in INSTANCE_OUTPUTS]
        params = {k: str(v) for k, v in (overrides or {}).items() if v is not None}
        response = self._client.infer(
            model,
            [image],
            outputs=outputs,
            parameters=params or None,
            client_timeout=timeout_s or self.timeout_s,
        )
        n = int(response.as_numpy(NUM_DETECTIONS.name)[0, 0])
        height, width = (int(v) for v in response.as_numpy(IMAGE_SIZE.name)[0])
        return InstanceResult(
            height=height,
            width=width,
            boxes=response.as_numpy(tasks.BOXES.name)[0, :n],
            scores=response.as_numpy(tasks.SCORES.name)[0, :n],
            classes=response.as_numpy(tasks.CLASSES.name)[0, :n],
            masks=list(response.as_numpy(tasks.MASKS.name)[0, :n]),
        )

    def infer_semantic(
        self, model: str, encoded_image: bytes, timeout_s: float | None = None
    ) -> SemanticResult:
        image = _image_input(encoded_image)
        outputs = [grpcclient.InferRequestedOutput(n) for n in SEMANTIC_OUTPUTS]
        response = self._client.infer(
            model, [image], outputs=outputs, client_timeout=timeout_s or self.timeout_s
        )
        height, width = (int(v) for v in response.as_numpy(IMAGE_SIZE.name)[0])
        return SemanticResult(height, width, response.as_numpy(SEMANTIC_MASK_NAME)[0, :height, :width])

    def infer_classes(
        self,
        model: str,
        encoded_image: bytes,
        top_k: int,
        segment: tuple[tuple[float, float, float, float], str | bytes] | None = None,
        timeout_s: float | None = None,
    ) -> ClassificationResult:
        """The ``top_k`` classes of one image, or of one segment of it (``segment``: its box xyxy
        and COCO RLE counts, b"" for the box alone) sent to the ``<model>_segment`` ensemble. Asks
        the probabilities with ``class_count``: Triton sorts them and names them by the ensemble's
        labels file."""
        inputs = [_image_input(encoded_image)]
        if segment is not None:
            box, counts = segment
            box_input = grpcclient.InferInput(SEGMENT_BOX.name, [1, *SEGMENT_BOX.dims], "FP32")
            box_input.set_data_from_numpy(np.asarray(box, np.float32).reshape(1, 4))
            mask_input = grpcclient.InferInput(SEGMENT_MASK.name, [1, *SEGMENT_MASK.dims], "BYTES")
            raw = counts.encode() if isinstance(counts, str) else counts
            mask_input.set_data_from_numpy(np.array([[raw]], dtype=np.object_))
            inputs += [box_input, mask_input]
            model = tasks.segment_ensemble_name(model)
        outputs = [
            grpcclient.InferRequestedOutput(PROBABILITIES_NAME, class_count=top_k),
            grpcclient.InferRequestedOutput(IMAGE_SIZE.name),
        ]
        response = self._client.infer(
            model, inputs, outputs=outputs, client_timeout=timeout_s or self.timeout_s
        )
        height, width = (int(v) for v in response.as_numpy(IMAGE_SIZE.name)[0])
        return ClassificationResult(
            height, width, parse_classification(response.as_numpy(PROBABILITIES_NAME)[0])
        )

    def close(self) -> None:
        """Also ends every request in flight at once (they raise CANCELLED): how a run stops
        without waiting out its requests' timeouts."""
        self._client.close()


def _image_input(encoded_image: bytes) -> grpcclient.InferInput:
    """The ensemble's one input: the encoded file, batch of one."""
    image = grpcclient.InferInput(IMAGE.name, [1, *IMAGE.dims], "BYTES")
    image.set_data_from_numpy(np.array([[encoded_image]], dtype=np.object_))
    return image


def parse_classification(entries) -> list[tuple[float, int, str]]:
    """Triton's classification strings, "score:index:label" (the label may hold colons; Triton
    leaves ":label" out where its labels file has no line for the index), as (score, index, label
    or ""), in the order Triton gives them (best first)."""
    parsed = []
    for entry in entries:
        text = entry.decode() if isinstance(entry, bytes) else str(entry)
        score, index, *label = text.split(":", 2)
        parsed.append((float(score), int(index), label[0] if label else ""))
    return parsed
