"""Reading the two kinds of parameters a Python-backend model gets: the ``parameters`` of its
config.pbtxt (defaults, set by build-repo) and per-request parameters (client overrides)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from segcontract.model_metadata import ConfigKeys, ModelMetadata


def config_parameters(model_config_json: str) -> dict[str, str]:
    config = json.loads(model_config_json)
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def config_metadata(model_config_json: str) -> tuple[ModelMetadata, dict[str, str]]:
    """The model's record (what it reads), and its parameters (for its own per-model keys)."""
    params = config_parameters(model_config_json)
    return ModelMetadata.from_parameters(params), params


def request_overrides(
    parameters_json: str, defaults: dict[str, Any], ceilings: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Values of ``defaults``' keys overridden by the request's parameters, cast to the default's type.
    A value above its ``ceilings`` entry is lowered to it: the server's limit, not the client's, bounds
    the work one request can ask for.

    Raises ValueError naming the parameter when a value does not parse or is out of range."""
    given = json.loads(parameters_json or "{}")
    values = dict(defaults)
    for key, default in defaults.items():
        if key in given:
            try:
                values[key] = type(default)(given[key])
            except (TypeError, ValueError):
                kind = {int: "an integer", float: "a number"}.get(type(default), type(default).__name__)
                raise ValueError(f"request parameter {key}={given[key]!r} is not {kind}") from None
    for key in (ConfigKeys.CONF, ConfigKeys.IOU):
        if key in values and not 0.0 <= values[key] <= 1.0:
            raise ValueError(f"request parameter {key}={values[key]} must be between 0 and 1")
    if values.get(ConfigKeys.MAX_DET, 1) < 1:
        raise ValueError(f"request parameter max_det={values[ConfigKeys.MAX_DET]} must be at least 1")
    for key, ceiling in (ceilings or {}).items():
        values[key] = min(values[key], type(values[key])(ceiling))
    return values
