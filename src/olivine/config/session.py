"""onnxruntime session options as written in Olive configs (``inference_settings.session_options``).

Olive configs give the enum-valued options either as integers (``"execution_mode": 0``) or by their
onnxruntime names (``"execution_mode": "ORT_SEQUENTIAL"``, ``"graph_optimization_level":
"ORT_ENABLE_ALL"``). Both are accepted and normalised to the integer, so a cache key or an output
``model_config.json`` does not depend on the spelling. onnxruntime is not imported here: the names and
values are onnxruntime's own (``onnxruntime.ExecutionMode`` / ``GraphOptimizationLevel`` /
``ExecutionOrder``), copied so that validating a config stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator

from olivine.config.base import StrictModel

EXECUTION_MODES: Mapping[str, int] = {"ORT_SEQUENTIAL": 0, "ORT_PARALLEL": 1}
GRAPH_OPTIMIZATION_LEVELS: Mapping[str, int] = {
    "ORT_DISABLE_ALL": 0,
    "ORT_ENABLE_BASIC": 1,
    "ORT_ENABLE_EXTENDED": 2,
    "ORT_ENABLE_LAYOUT": 3,
    "ORT_ENABLE_ALL": 99,
}
EXECUTION_ORDERS: Mapping[str, int] = {"DEFAULT": 0, "PRIORITY_BASED": 1, "MEMORY_EFFICIENT": 2}


def enum_value(value: Any, members: Mapping[str, int]) -> int:
    """The integer of an onnxruntime enum given as its integer or its name (``ORT_SEQUENTIAL``)."""
    allowed = ", ".join(f"{name} ({number})" for name, number in members.items())
    if isinstance(value, bool):  # bool is an int subclass; True is no execution mode
        raise ValueError(f"expected one of {allowed}, got {value!r}")
    if isinstance(value, int):
        if value in members.values():
            return value
    elif isinstance(value, str):
        name = value.strip().upper().rpartition(".")[2]  # "ExecutionMode.ORT_PARALLEL" is accepted too
        if name in members:
            return members[name]
    raise ValueError(f"expected one of {allowed}, got {value!r}")


def _enum(members: Mapping[str, int]) -> BeforeValidator:
    return BeforeValidator(lambda value: enum_value(value, members))


ExecutionMode = Annotated[int, _enum(EXECUTION_MODES)]
GraphOptimizationLevel = Annotated[int, _enum(GRAPH_OPTIMIZATION_LEVELS)]
ExecutionOrder = Annotated[int, _enum(EXECUTION_ORDERS)]
#: More threads than any CPU server has: a typo (100000 threads hung a 2-CPU machine), refused at config time.
MAX_THREADS = 1024
ThreadCount = Annotated[int, Field(ge=0, le=MAX_THREADS)]  # 0: onnxruntime's default (one per physical core)


class SessionOptions(StrictModel):
    """The ``onnxruntime.SessionOptions`` attributes a config may set, plus ``extra_session_config``
    (``add_session_config_entry`` pairs). An unknown key is an error, not an ignored option."""

    execution_mode: ExecutionMode | None = None
    graph_optimization_level: GraphOptimizationLevel | None = None
    execution_order: ExecutionOrder | None = None
    inter_op_num_threads: ThreadCount | None = None
    intra_op_num_threads: ThreadCount | None = None
    enable_profiling: bool | None = None
    enable_cpu_mem_arena: bool | None = None
    enable_mem_pattern: bool | None = None
    enable_mem_reuse: bool | None = None
    use_deterministic_compute: bool | None = None
    use_per_session_threads: bool | None = None
    log_severity_level: Annotated[int, Field(ge=0, le=4)] | None = None
    log_verbosity_level: int | None = None
    logid: str | None = None
    profile_file_prefix: str | None = None
    optimized_model_filepath: str | None = None
    extra_session_config: dict[str, Any] | None = None

    @field_validator("optimized_model_filepath", "profile_file_prefix", "enable_profiling")
    @classmethod
    def _no_session_files(cls, value: Any) -> Any:
        if value in (None, False):
            return value
        # onnxruntime writes these files from every session: each evaluation, candidate and worker opens
        # its own, and the path is taken from the working directory of whichever process (or remote host)
        # runs it; a model config read back from a datastore must not choose where files are written.
        raise ValueError(
            "not supported: onnxruntime would write a file from every session Olivine "
            "opens, relative to the working directory of the process running it (to keep an "
            "onnxruntime-optimized model, use OrtTransformersOptimization with only_onnxruntime; to profile, "
            "run onnxruntime on the output model)"
        )


def normalize_session_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated options with enum names turned into integers and unset keys dropped.

    Raises:
        ValueError: naming the key and what is allowed (for session options that did not come through a
            validated config, e.g. a model config written by another tool).
    """
    if not options:
        return {}
    try:
        model = SessionOptions.model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"])
        message = "unknown session option" if first["type"] == "extra_forbidden" else first["msg"]
        raise ValueError(f"session_options.{key}: {message.removeprefix('Value error, ')}") from None
    return model.model_dump(exclude_none=True)
