"""Every exception class in our packages is a user error under the one root,
``segcontract.errors.SegstackError``, unless it is listed below as something else (a signal
between our own functions that never reaches a user).

The classes are found by reading the source (``ast``), not by importing it: the Python-backend
models import what only tritonserver has, and the builder and training packages take seconds to
import. The bases are resolved through each module's imports, re-exports included; one test
checks that the reading agrees with Python's own ``issubclass`` where importing is cheap."""

from __future__ import annotations

import ast
import builtins
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from segcontract.errors import SegstackError
from tests.conftest import REPO_ROOT

PACKAGES = (
    "builder",
    "clients",
    "training",
    "serving",
    "segcontract",
    "segops",
    "store",
    "model_checkpoints",
    "python_backend_models",
    "annotations",
    "review",
)
ROOT = "segcontract.errors.SegstackError"

# exceptions that are not user errors, and why they stay outside the root
OUTSIDE_THE_ROOT = {
    "clients.http_retry.Transient": "a retry signal: the caller retries it, then turns the last one "
    "into its own error (FetchError, a failed post)",
    "clients.groups.download.Cancelled": "the run is being stopped (Ctrl-C): the work in hand is "
    "dropped, the KeyboardInterrupt is what the user sees",
    "builder.tune.TrialFailed": "a trial whose server does not serve is a row of the tune table, "
    "not an error of the search",
}

# user errors that other code also catches as a built-in error: they keep that base
SECOND_BASES = {
    "clients.triton.request_loop.RequestError": "builtins.ValueError",
    "clients.groups.manifest.ManifestError": "builtins.ValueError",
    "segcontract.model_metadata.MetadataError": "builtins.ValueError",
    "segops.image_batch.BadItem": "builtins.ValueError",
    "segops.decode.ImageDecodeError": "builtins.ValueError",
    "training.colors.ColorTableError": "builtins.ValueError",
    "serving.tritonserver.ServerError": "builtins.RuntimeError",
}

# how another package's exception classes are named (click.ClickException, httpx.HTTPError...): a
# base named otherwise is not imported to find out
EXCEPTION_NAMES = ("Error", "Exception", "Exit", "Interrupt", "Warning", "Abort")

# modules cheap to import, where the reading is checked against issubclass
IMPORTABLE = (
    "segcontract.checkpoint_formats",
    "segcontract.model_metadata",
    "segops.decode",
    "segops.image_batch",
    "store.errors",
    "builder.errors",
    "clients.http_retry",
    "clients.triton.client",
    "clients.triton.request_loop",
    "clients.groups.manifest",
    "clients.groups.download",
    "clients.groups.pull",
    "serving.tritonserver",
)


@dataclass(frozen=True)
class ClassDef:
    name: str  # module.Class
    bases: tuple[str, ...]  # dotted, as the module's imports name them
    where: str  # path:line, for the message


@dataclass
class Module:
    bindings: dict[str, str]  # a name in the module → the dotted name it stands for
    classes: list[ClassDef]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """``from .x import y`` in ``module``: the module ``.x`` names."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    if isinstance(node, ast.Subscript):  # Generic[T]
        return _dotted(node.value)
    return None


def _read(path: Path) -> Module:
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bindings: dict[str, str] = {}
    defined: list[tuple[ast.ClassDef, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # import a.b: binds a; import a.b as c: binds c to a.b
                bound = alias.name if alias.asname else alias.name.split(".")[0]
                bindings[alias.asname or bound] = bound
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path.name == "__init__.py", node.level, node.module)
            for alias in node.names:
                bindings[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.ClassDef):
            defined.append((node, f"{module}.{node.name}"))
    for node, name in defined:
        bindings.setdefault(node.name, name)
    classes = []
    for node, name in defined:
        bases = []
        for base in node.bases:
            dotted = _dotted(base)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head in bindings:
                resolved = bindings[head] + (f".{rest}" if rest else "")
            elif hasattr(builtins, head) and not rest:
                resolved = f"builtins.{head}"
            else:
                resolved = dotted
            bases.append(resolved)
        where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        classes.append(ClassDef(name, tuple(bases), where))
    return Module(bindings, classes)


@cache
def _modules() -> dict[str, Module]:
    found = {}
    for package in PACKAGES:
        folder = REPO_ROOT / package
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                found[_module_name(path)] = _read(path)
    return found


@cache
def _classes() -> dict[str, ClassDef]:
    return {c.name: c for m in _modules().values() for c in m.classes}


def _canonical(name: str, seen: frozenset[str] = frozenset()) -> str:
    """The class ``name`` stands for, through re-exports (``from a import X`` in ``b``: ``b.X``)."""
    if name in _classes() or name in seen:
        return name
    module, _, attr = name.rpartition(".")
    binding = _modules().get(module, Module({}, [])).bindings.get(attr)
    return _canonical(binding, seen | {name}) if binding else name


@cache
def _ancestors(name: str) -> frozenset[str]:
    """Every class ``name`` derives from, ours and others' (other packages' by importing them)."""
    name = _canonical(name)
    if name in _classes():
        found: set[str] = set()
        for base in _classes()[name].bases:
            base = _canonical(base)
            found |= {base, *_ancestors(base)}
        return frozenset(found)
    module, _, attr = name.rpartition(".")
    if module != "builtins" and not attr.endswith(EXCEPTION_NAMES):
        return frozenset()  # torch.nn.Module, click.Group...: not imported, only to be told so
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return frozenset()
    if not isinstance(cls, type):
        return frozenset()
    return frozenset(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__[1:])


def _is_exception(name: str) -> bool:
    return "builtins.BaseException" in _ancestors(name)


def _exception_classes() -> dict[str, ClassDef]:
    return {n: c for n, c in _classes().items() if _is_exception(n)}


def test_every_user_error_derives_from_the_root():
    outside = [
        f"{c.where}: {n}({', '.join(c.bases)})"
        for n, c in _exception_classes().items()
        if ROOT not in _ancestors(n) and n != ROOT and n not in OUTSIDE_THE_ROOT
    ]
    assert not outside, (
        "derive these from segcontract.errors.SegstackError (or their package's error), or list them "
        "in OUTSIDE_THE_ROOT with the reason they never reach a user:\n" + "\n".join(outside)
    )


def test_what_stays_outside_the_root_is_there_and_outside():
    exceptions = _exception_classes()
    for name in OUTSIDE_THE_ROOT:
        assert name in exceptions, f"{name} is gone: take it off OUTSIDE_THE_ROOT"
        assert ROOT not in _ancestors(name), f"{name} is a user error now: take it off OUTSIDE_THE_ROOT"


def test_the_walk_finds_the_errors_of_every_layer():
    exceptions = _exception_classes()
    for name in (
        ROOT,
        "store.errors.StoreError",
        "builder.errors.BuildError",
        "builder.tensorrt.engine_build.TensorRTMissing",
        "clients.triton.client.ServerStopped",
        "segops.decode.ImageTooLargeError",
        "model_checkpoints.ultralytics.UnsafeCheckpoint",
        "training.output_dir.OutputFolderError",
    ):
        assert name in exceptions, name
    assert len(exceptions) >= 30, sorted(exceptions)


@pytest.mark.parametrize(("name", "second"), sorted(SECOND_BASES.items()))
def test_errors_caught_as_built_in_ones_keep_that_base(name, second):
    assert {ROOT, second} <= _ancestors(name), _classes()[name].bases


@pytest.mark.parametrize("module", IMPORTABLE)
def test_the_reading_agrees_with_python(module):
    imported = importlib.import_module(module)
    read = [c for c in _modules()[module].classes if _is_exception(c.name)]
    assert read, module
    for found in read:
        cls = getattr(imported, found.name.rpartition(".")[2])
        assert issubclass(cls, BaseException)
        assert issubclass(cls, SegstackError) == (ROOT in _ancestors(found.name)), found.name
