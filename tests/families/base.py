"""What every model family is tested for; a family's test file subclasses :class:`FamilyTestBase`.

The four checks follow a checkpoint from file to served answer:

* load: ``family.load`` gives a :class:`LoadedModel` with the checkpoint's class names, the input
  size, and the input/output names the family declares;
* export: builder's ONNX export and graph surgery give a checked graph with those inputs and
  outputs, a dynamic batch axis and static other dimensions (what Triton's config declares);
* ONNX vs PyTorch: ``builder.verify`` agrees on the family's own ``sample_inputs``;
* served parity (``integration``): build-repo → tritonserver → ``seg-client infer`` gives what the
  family's reference predictor gives (ultralytics' predict, the PyTorch module, ...).

A subclass sets the class attributes and provides the hooks: the ``checkpoint`` and ``images``
fixtures, :meth:`FamilyTestBase.make_reference` and :meth:`FamilyTestBase.check_parity`. The served
fixtures (``repository``, ``server``) build and start their own by default; a family whose
repository the session already builds overrides them with those session fixtures, so no build or
server start is repeated. Each family adds here one subclass (yolo-seg, smp; the classifier next).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
import torch

from builder import families, graph_surgery, verify
from builder.families import LoadedModel, LoadRequest, ModelFamily
from builder.onnx_export import export_onnx
from tests.conftest import run_cli


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    """A graph input's or output's shape: ints where static, the symbol's name where dynamic."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


class FamilyTestBase:
    # --- what the subclass declares -----------------------------------------------------------
    family: ClassVar[ModelFamily]
    model_name: ClassVar[str]  # what --model names
    class_names: ClassVar[tuple[str, ...]]  # what the test checkpoint records
    input_size: ClassVar[tuple[int, int]]  # (height, width) of the exported network's input
    input_names: ClassVar[tuple[str, ...]]
    output_names: ClassVar[tuple[str, ...]]
    served_name: ClassVar[str]  # the ensemble seg-client asks for
    build_args: ClassVar[tuple[str, ...]] = ()  # extra build-repo options of the default repository
    client_args: ClassVar[tuple[str, ...]] = ()  # extra seg-client infer options

    # --- hooks --------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls) -> Path:
        """The family's test checkpoint (random weights, no downloads)."""
        raise NotImplementedError(f"{cls.__name__} must provide a checkpoint fixture")

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls) -> Path:
        """A folder of images to serve and compare."""
        raise NotImplementedError(f"{cls.__name__} must provide an images fixture")

    @classmethod
    def load_request(cls, checkpoint: Path) -> LoadRequest:
        return LoadRequest(cls.model_name, checkpoint)

    @classmethod
    def make_reference(cls, checkpoint: Path) -> Any:
        """The predictor the served answers are compared with."""
        raise NotImplementedError

    def check_parity(self, served: Path, images: list[Path], reference: Any) -> None:
        """Assert that seg-client's output files in ``served`` agree with ``reference`` on ``images``."""
        raise NotImplementedError

    # --- shared fixtures ----------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls, checkpoint) -> LoadedModel:
        return cls.family.load(cls.load_request(checkpoint))

    @pytest.fixture(scope="class")
    @classmethod
    def samples(cls, loaded) -> list[np.ndarray]:
        return cls.family.sample_inputs(loaded)

    @pytest.fixture(scope="class")
    @classmethod
    def exported(cls, loaded, samples, tmp_path_factory) -> tuple[Path, dict[str, tuple[int, ...]], dict]:
        """(ONNX file, PyTorch's output shapes without the batch, node counts): the build's steps."""
        path = tmp_path_factory.mktemp(f"{cls.family.name}-onnx") / "model.onnx"
        first = torch.from_numpy(samples[0][:1])
        export_onnx(loaded.module, first, path, loaded.input_names, loaded.output_names)
        with torch.no_grad():
            outputs = verify.flatten_outputs(loaded.module(first))
        shapes = {n: tuple(o.shape[1:]) for n, o in zip(loaded.output_names, outputs, strict=True)}
        counts = graph_surgery.fold_and_clean(path, shapes)
        return path, shapes, counts

    @pytest.fixture(scope="class")
    @classmethod
    def repository(cls, checkpoint, tmp_path_factory) -> Path:
        repo = tmp_path_factory.mktemp(f"{cls.family.name}-repository")
        run_cli(
            "build-repo",
            "--model",
            cls.model_name,
            "--weights",
            str(checkpoint),
            "--output",
            str(repo),
            *cls.build_args,
            "--quiet",
        )
        return repo

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, repository, tmp_path_factory) -> Iterator[Any]:
        from serving.tritonserver import TritonServer

        log = tmp_path_factory.mktemp(f"{cls.family.name}-logs") / "server.log"
        with TritonServer(repository, log_path=log) as server:
            yield server

    @pytest.fixture(scope="class")
    @classmethod
    def served(cls, server, images, tmp_path_factory) -> Path:
        """seg-client infer's output folder for ``images``, every image answered."""
        out = tmp_path_factory.mktemp(f"{cls.family.name}-served")
        proc = run_cli(
            "seg-client",
            "infer",
            "--source",
            str(images),
            "--model",
            cls.served_name,
            "--url",
            server.grpc_url,
            "--out",
            str(out),
            *cls.client_args,
        )
        count = sum(1 for p in images.iterdir() if p.is_file())
        assert f"{count} written" in proc.stdout and "0 failed" in proc.stdout, proc.stdout
        return out

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls, checkpoint) -> Any:
        return cls.make_reference(checkpoint)

    # --- the tests every family gets ----------------------------------------------------------
    def test_model_name_resolves_to_the_family(self):
        assert type(families.resolve(self.model_name)) is type(self.family)

    def test_load_gives_names_and_sizes(self, loaded, checkpoint):
        assert isinstance(loaded, LoadedModel)
        assert loaded.class_names == list(self.class_names)
        assert loaded.input_size == self.input_size
        assert loaded.input_names == list(self.input_names)
        assert loaded.output_names == list(self.output_names)
        assert Path(loaded.source) == Path(checkpoint)
        assert not loaded.module.training
        spec = self.family.input_spec(loaded)
        assert (spec.height, spec.width) == self.input_size

    def test_sample_inputs_fit_the_input_and_vary_the_batch(self, loaded, samples):
        assert all(s.shape[1:] == samples[0].shape[1:] and s.dtype == np.float32 for s in samples)
        assert len({s.shape[0] for s in samples}) > 1, "sample_inputs should exercise the dynamic batch"
        with torch.no_grad():
            outputs = verify.flatten_outputs(loaded.module(torch.from_numpy(samples[0])))
        assert len(outputs) == len(self.output_names)

    def test_export_declares_the_inputs_and_outputs(self, exported, samples):
        path, shapes, counts = exported
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert counts["nodes_after"] <= counts["nodes_before"]
        inputs = {i.name: _dims(i) for i in model.graph.input}
        outputs = {o.name: _dims(o) for o in model.graph.output}
        assert tuple(inputs) == self.input_names and tuple(outputs) == self.output_names
        for dims in (*inputs.values(), *outputs.values()):
            assert isinstance(dims[0], str), f"batch axis not dynamic: {dims}"
            assert all(isinstance(d, int) and d > 0 for d in dims[1:]), f"not static: {dims}"
        assert inputs[self.input_names[0]][1:] == list(samples[0].shape[1:])
        assert {n: tuple(d[1:]) for n, d in outputs.items()} == shapes

    def test_onnx_matches_pytorch_on_the_sample_inputs(self, exported, loaded, samples):
        path = exported[0]
        comparisons = verify.check_onnx_against_torch(path, loaded.module, samples, loaded.output_names)
        assert tuple(c.name for c in comparisons) == self.output_names
        assert all(c.ok for c in comparisons), comparisons

    @pytest.mark.integration
    def test_the_folders_checked_before_the_build_are_the_ones_it_writes(self, repository):
        """build-repo checks its destination before loading anything (builder.repository
        .check_destination) by the names ``folder_names`` gives: they must be what it writes."""
        from builder.repository import MARKER

        written = sorted(p.name for p in repository.iterdir() if (p / MARKER).is_file())
        predicted = [sorted(self.family.folder_names(self.served_name, one)) for one in (True, False)]
        assert written in predicted, (written, predicted)

    @pytest.mark.integration
    def test_served_matches_the_reference(self, served, images, reference):
        self.check_parity(served, sorted(p for p in images.iterdir() if p.is_file()), reference)
