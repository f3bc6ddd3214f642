"""The Pass contract and the pass registry.

A pass is a small class: a typed config model (Olive's parameter names and defaults) and one ``run``
method that turns an input model into an output model written under ``output_dir``. Everything else
(caching, ordering, logging, failure records, search) is the engine's job.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

from olivine.model.accelerator import Accelerator
from olivine.model.handle import ModelHandle, ModelKind
from olivine.registry import Registry

if TYPE_CHECKING:
    from olivine.config.data import DataConfig


class PassConfig(BaseModel):
    """Base of every pass's config model: strict, so a misspelled parameter is an error.

    Olive declares every parameter that has a default ``Optional``, so ``null`` is a value an Olive config
    may give any of them (YAML's ``key:`` with nothing after it is one). Here it means not given: the
    default (under search, the parameter is searched as if unset). Olive's run code reads a null switch as
    false (``if config.quant_preprocess:``), which turned off what a true default turns on without a word;
    Olivine takes the default, and says so (:meth:`null_means_unset`). A parameter without a default still
    needs a value.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @classmethod
    def null_means_unset(cls, key: str) -> bool:
        """Whether ``null`` for ``key`` stands for leaving it out: a parameter with a default that takes no
        ``None`` of its own."""
        field_info = cls.model_fields.get(key)
        return (
            field_info is not None
            and not field_info.is_required()
            and not _accepts_none(field_info.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _olive_nulls(cls, value: Any) -> Any:
        if not isinstance(value, dict) or None not in value.values():
            return value
        return {k: v for k, v in value.items() if v is not None or not cls.null_means_unset(k)}


def _accepts_none(annotation: Any) -> bool:
    if annotation in (Any, None, type(None)):
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _accepts_none(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_accepts_none(arg) for arg in get_args(annotation))
    return False


@dataclass(frozen=True)
class ConditionalValues:
    """Olive's ``Conditional`` search values of a parameter: its value follows its parents' values.

    ``support`` maps the parents' values (a tuple, in ``parents`` order) to the parameter's value; a
    combination mapped to :data:`INVALID_CHOICE`, or not in ``support``, makes the point invalid (Olive's
    invalid choice); one mapped to :data:`IGNORED_CHOICE` leaves the parameter as configured. Only
    single-choice supports are modelled (those are the ones Olive declares for the passes here), so a
    conditional parameter adds no dimension to the space: Olive's length of such a parameter is 1.
    """

    parents: tuple[str, ...]
    support: Mapping[tuple[Any, ...], Any]

    def value_for(self, config: Any) -> Any:
        """The parameter's value for ``config``'s parents (or a choice sentinel)."""
        return self.support.get(tuple(getattr(config, p) for p in self.parents), INVALID_CHOICE)


INVALID_CHOICE = "OLIVE_INVALID_PARAM_VALUE"
IGNORED_CHOICE = "OLIVE_IGNORED_PARAM_VALUE"


class SharedSteps(Protocol):
    """Intermediate artifacts that several runs from one input model share, made once (the engine keeps
    them in its cache, keyed by the input model's id, ``name``, ``params`` and the pass's library
    versions). E.g. quantization pre-processing: every quantization candidate of a search starts from the
    same pre-processed graph."""

    def get_or_make(self, name: str, params: Mapping[str, Any], make: Callable[[Path], Path]) -> Path:
        """The artifact's file; ``make(folder)`` writes it into an empty ``folder`` and returns its path
        when there is none yet. Treat the returned file (and its folder) as read-only. An exception of
        ``make`` propagates, and is raised again (without ``make``) for the same key in this process."""
        ...


@dataclass(frozen=True)
class PassContext:
    accelerator: Accelerator = field(default_factory=Accelerator)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("olivine.passes"))
    #: The workflow's data configs by name (a pass's ``data_config`` parameter names one, e.g. calibration).
    data_configs: Mapping[str, DataConfig] = field(default_factory=dict)
    #: The folder relative paths in data configs are relative to (the config file's folder).
    base_dir: Path | None = None
    #: Shared intermediate artifacts of the input model (None outside the engine: the pass makes its own).
    shared: SharedSteps | None = None
    #: The input model's id in the cache (its content hash, or the key of the run that made it); None
    #: outside the engine.
    model_id: str | None = None


class Pass(ABC):
    #: Olive's type name; the registry key.
    name: ClassVar[str]
    #: Bump when the same config would now produce a different artifact; it is part of the cache key.
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[PassConfig]]
    #: Model kinds the pass accepts as input.
    accepts: ClassVar[tuple[ModelKind, ...]]
    #: Distributions whose versions shape the artifact; their versions go into the cache key.
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")
    #: Olive's declared search values per parameter: what ``"SEARCHABLE_VALUES"`` expands to under search
    #: (the same values Olive's pass declares for that parameter, in Olive's order).
    search_values: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    #: Olive's conditional search values (``Conditional``): under search, a parameter given as
    #: ``"SEARCHABLE_VALUES"`` (or left unset) takes the value its parents' values select.
    conditional_search_values: ClassVar[Mapping[str, ConditionalValues]] = {}
    #: Searched parameters that vary fastest, in this order (the others follow in the config's field
    #: order): where Olive declares a parameter before the ones this config model inherits.
    search_first: ClassVar[tuple[str, ...]] = ()
    #: Older Olive names the config model still reads: old name -> the parameter it sets. Under
    #: ``include_pass_params`` a parameter given under its old name is not searched a second time.
    legacy_names: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def data_config_name(cls, config: Any) -> str | None:
        """The data config the pass reads (its ``data_config`` parameter); its content keys the run."""
        name = getattr(config, "data_config", None)
        return name if isinstance(name, str) else None

    @classmethod
    def shared_steps(cls, config: Any) -> tuple[str, ...]:
        """The names of the shared steps (:class:`SharedSteps`) a run with ``config`` gets or makes: a
        scheduler that runs several candidates at once starts work that does not wait for one being made
        first. () when it uses none."""
        return ()

    @classmethod
    def ignored_params(cls, fixed: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """(why, names): the parameters that ``fixed`` (the parameters a config sets to one value) makes
        the pass ignore; resolution warns about those the config gives and does not search them."""
        return "", ()

    @classmethod
    def invalid_reason(cls, config: Any, accelerator: Accelerator) -> str | None:
        """Why this combination of parameters cannot run (search skips it and logs the reason), or None."""
        return None

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """For a pass that names parts of its input ONNX model (inputs, outputs, nodes, dimensions): the
        (parameter key, reason) of a name the model does not have, or None. ``proto`` is the input model
        (an ``onnx.ModelProto``, external data not loaded; a copy of its own, which it may change). Asked
        at validation of the first pass when the workflow's input is a local ONNX file, so that a wrong
        name is refused before anything runs or is submitted."""
        return None

    def check_output(self, output: ModelHandle) -> None:
        """Raise if what :meth:`run` wrote is not a usable model; the engine calls this before the cache
        commits the run, so a corrupt artifact is recorded as a failure, never as a success."""
        return None

    @abstractmethod
    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        """Produce the output model under ``output_dir`` (which exists and is empty) and return its handle."""


PASSES: Registry[type[Pass]] = Registry("pass")
PASSES.register("OnnxConversion", "olivine.passes.onnx_conversion:OnnxConversion", extra="torch")
PASSES.register(
    "OrtTransformersOptimization", "olivine.passes.transformers_optimization:OrtTransformersOptimization"
)
PASSES.register("OnnxDynamicQuantization", "olivine.passes.dynamic_quantization:OnnxDynamicQuantization")
PASSES.register("OnnxStaticQuantization", "olivine.passes.static_quantization:OnnxStaticQuantization")
PASSES.register("OnnxQuantization", "olivine.passes.onnx_quantization:OnnxQuantization")
PASSES.register("OnnxQuantizationPreprocess", "olivine.passes.quant_preprocess:OnnxQuantizationPreprocess")
PASSES.register("OnnxFloatToFloat16", "olivine.passes.float16_conversion:OnnxFloatToFloat16")
PASSES.register("OnnxIODataTypeConverter", "olivine.passes.io_datatype_converter:OnnxIODataTypeConverter")
# Olive <= 0.8's name: the same pass with the same defaults (float16 -> float32 on names matching "logits").
PASSES.register("OnnxIOFloat16ToFloat32", "olivine.passes.io_datatype_converter:OnnxIODataTypeConverter")
PASSES.register(
    "OnnxBlockWiseRtnQuantization", "olivine.passes.rtn_quantization:OnnxBlockWiseRtnQuantization"
)
PASSES.register("OnnxMatMul4Quantizer", "olivine.passes.rtn_quantization:OnnxMatMul4Quantizer")
PASSES.register("OnnxPeepholeOptimizer", "olivine.passes.peephole_optimizer:OnnxPeepholeOptimizer")
# Olive <= 0.6's name for the peephole optimizer (no parameters of its own).
PASSES.register("OnnxModelOptimizer", "olivine.passes.peephole_optimizer:OnnxPeepholeOptimizer")
PASSES.register("DynamicToFixedShape", "olivine.passes.dynamic_to_fixed_shape:DynamicToFixedShape")
PASSES.register("GraphSurgeries", "olivine.passes.graph_surgeries:GraphSurgeries")
PASSES.register("AddOliveMetadata", "olivine.passes.add_metadata:AddOliveMetadata")
PASSES.register("ModelBuilder", "olivine.passes.model_builder:ModelBuilder", extra="genai")
PASSES.register("OrtSessionParamsTuning", "olivine.passes.session_params_tuning:OrtSessionParamsTuning")
PASSES.register(
    "OrtPerfTuning", "olivine.passes.session_params_tuning:OrtSessionParamsTuning"
)  # Olive <= 0.6
