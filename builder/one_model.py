"""A Python-backend ensemble (python-onnx, python-openvino) folded into one model of its name.

On the CPU every model of the ensemble is a Python-backend process, and the server copies each
image's network input and raw outputs from one process to the next. A family that has a
one-process model (``python_backend_models/<source>.py``, which imports the steps' modules)
serves that instead: the same code, the same inputs, outputs and parameters, without the hops.
"""

from __future__ import annotations

from collections.abc import Sequence

from tritonclient.grpc import model_config_pb2 as mc

from builder.model_folder import ModelFolder, python_backend_folder

MODEL_FILE = "1/model.py"


def fold_ensemble(folders: Sequence[ModelFolder], name: str, source: str) -> ModelFolder:
    """One Python model named ``name`` doing what the ensemble ``name`` of ``folders`` does.

    Its inputs, outputs, largest batch and record are the ensemble's; its instances and dynamic
    batcher the network's (``<name>_model``), whose session it runs. Each step's ``model.py`` sits
    beside ``source`` under its module's own name, with the step's other files (``model.onnx``);
    the steps' parameters are merged (each step reads its own keys), and one key with two values
    is a bug, refused."""
    by_name = {f.name: f for f in folders}
    ensemble = by_name[name].config
    if ensemble.platform != "ensemble":
        raise ValueError(f"{name}: not an ensemble")
    steps = [by_name[step.model_name] for step in ensemble.ensemble_scheduling.step]
    for step in steps:
        if step.config.backend != "python":
            raise ValueError(f"{step.name}: not a Python-backend model; only those fold into one")
    network = by_name[f"{name}_model"].config
    config = mc.ModelConfig(name=name, backend="python", max_batch_size=ensemble.max_batch_size)
    config.input.extend(ensemble.input)
    config.output.extend(ensemble.output)
    config.instance_group.extend(network.instance_group)
    if network.HasField("dynamic_batching"):
        config.dynamic_batching.CopyFrom(network.dynamic_batching)
    for part in (ensemble, *(step.config for step in steps)):
        for key, value in part.parameters.items():
            if key in config.parameters and config.parameters[key] != value:
                raise ValueError(f"{name}: parameter {key!r} differs between the ensemble's models")
            config.parameters[key].CopyFrom(value)
    folder = python_backend_folder(config, source)
    for step in steps:
        for path, file in step.files.items():
            target = f"1/{file.name}" if path == MODEL_FILE else path
            if target in folder.files:
                raise ValueError(f"{name}: two steps bring {target}")
            folder.files[target] = file
        folder.dirs.update(step.dirs)
        folder.texts.update(step.texts)  # the network's quantization.json
    return folder
