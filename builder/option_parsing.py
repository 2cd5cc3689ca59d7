"""From ``build-repo``'s command line to one ``BuildOptions``: the option groups of
``builder.cli_options`` put on a command, each parsed into its dataclass of ``builder.options``,
and build options refused where a subcommand runs instead of a build."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from builder.cli_options import ENGINE_PARAMETERS, OPTION_GROUPS, QUANTIZE_PARAMETERS
from builder.errors import BuildError
from builder.options import QUANTIZING_RUNTIMES, BatchingOptions, BuildOptions, ModelOptions, RuntimeOptions
from builder.quantization.options import Int8Options
from builder.settings import LoadRequest
from builder.tensorrt.options import PRECISIONS, BatchProfile, EngineOptions, engine_tolerance

T = TypeVar("T")


def _parse(ctx: click.Context, params: dict[str, Any]) -> BuildOptions:
    """The command line's options, each into its group: the one place the groups are made."""
    if params["model"] is None:
        raise click.MissingParameter(ctx=ctx, param=_parameter(ctx, "model"))
    runtime = RuntimeOptions(
        params["runtime"], params["threads"], params["onnx_tensorrt"], params["ensemble"], params["square"]
    )
    engine = _engine(ctx, runtime, params)  # before the other groups: its errors come first
    int8 = _int8(ctx, runtime, params)
    model = _group(ModelOptions, params, request=_group(LoadRequest, params, rect=False))  # set by the build
    batching = _group(BatchingOptions, params)
    return BuildOptions(model, params["output"], batching=batching, runtime=runtime, engine=engine, int8=int8)


def _group(cls: type[T], params: dict[str, Any], **given: Any) -> T:
    """A group from the command-line parameters named as its fields (and ``given``)."""
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    return cls(**{name: params[name] for name in names}, **given)


def _engine(ctx: click.Context, runtime: RuntimeOptions, params: dict[str, Any]) -> EngineOptions | None:
    """The engine options, or None when the runtime builds no TensorRT engine (then none may be given)."""
    given = _given(ctx, ENGINE_PARAMETERS)
    if runtime.quantizes and params["precision"] == "int8":
        given.remove("--int8")  # a CPU runtime's quantization (_int8), not an engine's precision
    if given:
        runtime.refuse_engine_options(given)
    if not runtime.builds_engine:
        return None
    precision = params["precision"] or PRECISIONS[0]
    runtime.check_precision(precision)
    max_batch = params["max_batch_size"]
    return EngineOptions(
        precision=precision,
        profile=BatchProfile(params["min_batch"], params["opt_batch"] or max_batch, max_batch),
        workspace_gib=params["workspace"],
        timing_cache=params["timing_cache"],
        images=params["images"],
        calibration_cache=params["calibration_cache"],
        tolerance=engine_tolerance(precision, params["engine_atol"], params["engine_rtol"]),
    )


def _int8(ctx: click.Context, runtime: RuntimeOptions, params: dict[str, Any]) -> Int8Options | None:
    """A CPU runtime's --int8 with its calibration images and limit; None without --int8."""
    given = _given(ctx, QUANTIZE_PARAMETERS)
    if not (runtime.quantizes and params["precision"] == "int8"):
        if given:
            raise BuildError(f"{', '.join(given)}: options of --int8 on {QUANTIZING_RUNTIMES}")
        return None
    if params["calibration_images"] is None:
        raise BuildError(
            f"--int8 on --runtime {runtime.name} needs --calibration-images DIR: a folder of images like "
            "those the model will serve (a few hundred), to calibrate on and to measure the drop"
        )
    return Int8Options(params["calibration_images"], params["max_drop"], params["accept_drop"])


def _parameter(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


def _given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """The flags of the parameters ``names`` that the command line gave (--fp16/--int8 set precision)."""
    return [
        f"--{ctx.params[name]}" if name == "precision" else "--" + name.replace("_", "-")
        for name in names
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
    ]


def _refuse_build_options(ctx: click.Context) -> None:
    """``build-repo --fp16 doctor``: build options mean nothing to a subcommand (the group's own
    options, such as --debug, pass no value to the build and are not among them)."""
    given = _given(ctx, dict.fromkeys(p.name for p in ctx.command.params if p.name in ctx.params))
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: build options; give them without a subcommand "
            f"(build-repo {ctx.invoked_subcommand} takes its own)"
        )


def build_options(command: Callable[[BuildOptions, bool], None]) -> Callable[..., None]:
    """Declare every build option, and call ``command`` with them parsed into one BuildOptions and
    --quiet. When a subcommand (doctor) runs instead of a build, ``command`` is not called."""

    @functools.wraps(command)
    def callback(**params: Any) -> None:
        ctx = click.get_current_context()
        if ctx.invoked_subcommand is not None:
            _refuse_build_options(ctx)
            return
        quiet = params.pop("quiet")
        command(_parse(ctx, params), quiet)

    for group in reversed(OPTION_GROUPS):
        for option in reversed(group):
            callback = option(callback)
    return callback
