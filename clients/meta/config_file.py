"""The configuration file (``segstack.yaml``) of ``seg-client meta build`` and ``meta post``: the
Triton server, the folder layout, the segment store, the models whose outputs go into ret_meta
and the metadata service. Its JSON Schema (``segcontract/schemas/segstack_config.schema.json``)
documents every key; a file that breaks it is refused in one line naming the key.

Secrets are not in the file: ``ret_meta.token_env`` names the environment variable that holds
the bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from clients.triton.client import DEFAULT_TIMEOUT_S, ClientError
from clients.triton.replicas import DEFAULT_URL
from segcontract import schemas
from store.layout import DataLayout

CONFIG_FILE = "segstack.yaml"
SCHEMA = "segstack_config"
DEFAULT_TOKEN_ENV = "SEGSTACK_API_TOKEN"


@dataclass(frozen=True)
class ModelEntry:
    """One model of ``models:``: what meta build asks it, per request."""

    name: str
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    top_k: int | None = None
    segments: bool = False
    segment_model: str | None = None
    key: str | None = None

    @property
    def label(self) -> str:
        """Its name in ret_meta: ``key``, else the model's name."""
        return self.key or self.name

    @property
    def overrides(self) -> dict[str, Any]:
        return {"conf": self.conf, "iou": self.iou, "max_det": self.max_det, "top_k": self.top_k}

    @property
    def settings(self) -> dict[str, Any]:
        """What the configuration asks of the model beyond its name: part of what its answers
        depend on."""
        return {k: v for k, v in vars(self).items() if k not in ("name", "key") and v not in (None, False)}


@dataclass(frozen=True)
class ServiceSettings:
    """``ret_meta:``: where and how meta post sends."""

    endpoint: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    chunk_size: int = 100
    timeout_s: float = 30.0
    retries: int = 5
    ca_bundle: Path | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None  # the file read; None: none was there, every default holds
    layout: DataLayout
    urls: tuple[str, ...] = (DEFAULT_URL,)
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrency: int = 4
    db: str | None = None
    models: tuple[ModelEntry, ...] = ()
    service: ServiceSettings = field(default_factory=ServiceSettings)


def load_config(path: Path | None, data_root: Path) -> Config:
    """``path`` (``--config``), else ``<data-root>/segstack.yaml`` when it exists, else the
    defaults. Relative paths in the file (layout folders, ca_bundle) are relative to the data root."""
    given = path is not None
    path = Path(path) if given else Path(data_root) / CONFIG_FILE
    if not path.is_file():
        if given:
            raise ClientError(f"--config {path}: no such file")
        return Config(None, DataLayout(Path(data_root)))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"{path}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ClientError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    document = {} if document is None else document
    _check(path, document)
    config = _config(path, document, Path(data_root))
    labels = [entry.label for entry in config.models]
    for index, label in enumerate(labels):
        if label in labels[:index]:
            raise ClientError(
                f"{path}: models[{index}]: {label!r} is listed twice; give one of them a key: "
                "(its name in ret_meta)"
            )
    return config


def _check(path: Path, document: Any) -> None:
    validator = Draft202012Validator(schemas.load(SCHEMA))
    errors = sorted(
        validator.iter_errors(document),
        key=lambda e: (list(map(str, e.absolute_path)), e.validator != "additionalProperties", e.message),
    )
    if errors:
        error = errors[0]
        key = _key(error.absolute_path)
        raise ClientError(f"{path}: {key + ': ' if key else ''}{_message(error)}")


def _key(parts) -> str:
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _message(error) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{error.message.split('(')[-1].rstrip(')')}; the keys here are {allowed}"
    if error.validator == "pattern" and list(error.absolute_path)[-1:] == ["token_env"]:
        return "not an environment variable's name: give the variable's name here, never the token"
    if error.validator == "oneOf" and error.schema.get("description"):
        return f"expected {error.schema['description']}, not {error.instance!r}"
    return error.message


def _config(path: Path, document: dict, data_root: Path) -> Config:
    triton = document.get("triton", {})
    url = triton.get("url", DEFAULT_URL)
    service = document.get("ret_meta", {})
    ca_bundle = service.get("ca_bundle")
    return Config(
        path=path,
        layout=DataLayout(data_root, tuple(sorted(document.get("layout", {}).items()))),
        urls=tuple(url) if isinstance(url, list) else (url,),
        timeout_s=float(triton.get("timeout", DEFAULT_TIMEOUT_S)),
        concurrency=int(triton.get("concurrency", 4)),
        db=document.get("store", {}).get("url"),
        models=tuple(ModelEntry(**entry) for entry in document.get("models", [])),
        service=ServiceSettings(
            endpoint=service.get("endpoint"),
            token_env=service.get("token_env", DEFAULT_TOKEN_ENV),
            chunk_size=int(service.get("chunk_size", 100)),
            timeout_s=float(service.get("timeout", 30.0)),
            retries=int(service.get("retries", 5)),
            ca_bundle=(data_root / ca_bundle) if ca_bundle else None,
        ),
    )
