"""``GraphSurgeries``: a list of named graph edits (surgeons) applied in order to an ONNX model.

Olive's pass (olive/passes/onnx/graph_surgeries.py): ``surgeries`` is a list of
``{"surgeon": <name>, <its parameters>}`` and ``remove_duplicate_initializers`` (default true) merges
initializers with the same content afterwards. Every surgeon name and parameter is checked when the config
is validated: an unknown surgeon, one tied to a non-CPU runtime, or an unknown parameter is refused with
the index of the surgery. See :mod:`olivine.passes.surgeons` (and ``surgeons_norm``, ``surgeons_embed``,
``surgeons_llm``).
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError, field_validator

from olivine.errors import PassRunError
from olivine.model.handle import ModelHandle, walk_nodes
from olivine.passes.base import PassConfig, PassContext
from olivine.passes.onnx_io import ExternalDataConfig, OnnxPass, load_onnx, write_output
from olivine.passes.surgeons import NAMING_SURGEONS, NON_CPU_SURGEONS, ProtoSurgeon, Surgeon


class GraphSurgeriesConfig(ExternalDataConfig):
    surgeries: list[dict[str, Any]]
    remove_duplicate_initializers: bool = True

    @field_validator("surgeries")
    @classmethod
    def _known_surgeons(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, surgery in enumerate(value):
            parse_surgery(surgery, index)
        return value


def parse_surgery(surgery: dict[str, Any], index: int) -> Surgeon:
    """The surgeon of ``surgeries[index]``, parameters validated; a ``ValueError`` says what is wrong."""
    where = f"surgeries[{index}]"
    name = surgery.get("surgeon")
    if name is None or name == "":
        raise ValueError(f"{where}: 'surgeon' (the surgeon's name) is required")
    if not isinstance(name, str):
        raise ValueError(f"{where}: 'surgeon' must be a surgeon's name (a string), got {type(name).__name__}")
    non_cpu = {k.lower(): (k, v) for k, v in NON_CPU_SURGEONS.items()}
    if name.lower() in non_cpu:
        canonical, reason = non_cpu[name.lower()]
        raise ValueError(f"{where}: surgeon '{canonical}' is refused on the CPU target: {reason}")
    cls = Surgeon.registry.get(name.lower())
    if cls is None:
        names = sorted(c.__name__ for c in Surgeon.registry.values())
        close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=1)
        hint = f" (did you mean '{next(n for n in names if n.lower() == close[0])}'?)" if close else ""
        raise ValueError(f"{where}: unknown surgeon '{name}'{hint}; allowed: {', '.join(names)}")
    params = {k: v for k, v in surgery.items() if k != "surgeon"}
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        problem = "unknown parameter" if error["type"] == "extra_forbidden" else error["msg"]
        raise ValueError(f"{where} ({cls.__name__}): {key + ': ' if key else ''}{problem}") from None


class GraphSurgeries(OnnxPass):
    name: ClassVar[str] = "GraphSurgeries"
    version: ClassVar[str] = "2"
    config_class: ClassVar[type[PassConfig]] = GraphSurgeriesConfig
    libraries: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime", "onnxscript", "onnx-ir")

    @classmethod
    def input_problem(cls, config: Any, proto: Any) -> tuple[str, str] | None:
        """The leading surgeons that only name inputs, outputs, nodes and dimensions, applied to the input
        graph in order (each sees the names the ones before left): the first that does not fit it."""
        import onnx_ir as ir

        cfg: GraphSurgeriesConfig = config
        surgeons = [parse_surgery(surgery, index) for index, surgery in enumerate(cfg.surgeries)]
        leading = list(itertools.takewhile(lambda s: type(s).__name__ in NAMING_SURGEONS, surgeons))
        if not leading:
            return None
        try:
            model = ir.from_proto(proto)
        except Exception:  # the run says what is wrong with the model itself
            return None
        for index, surgeon in enumerate(leading):
            try:
                model = surgeon.apply(model)
            except ValueError as exc:
                return f"surgeries.{index}", f"surgeon {type(surgeon).__name__}: {exc}"
            except Exception:  # not a name problem: the run says what it is
                return None
        return None

    def run(self, model: ModelHandle, config: Any, output_dir: Path, ctx: PassContext) -> ModelHandle:
        import onnx_ir as ir
        from onnx_ir.passes.common import DeduplicateHashedInitializersPass

        cfg: GraphSurgeriesConfig = config
        # The model stays a proto until a surgeon needs the IR, and goes back for a proto surgeon.
        current: Any = load_onnx(model.onnx_path)
        for index, surgery in enumerate(cfg.surgeries):
            surgeon = parse_surgery(surgery, index)
            try:
                if isinstance(surgeon, ProtoSurgeon):
                    current = surgeon.apply_proto(_as_proto(current))
                else:
                    current = surgeon.apply(
                        current if isinstance(current, ir.Model) else ir.from_proto(current)
                    )
            except Exception as exc:  # surgeons raise ValueError for a model they do not fit, onnx_ir others
                where = f"surgeries[{index}] ({type(surgeon).__name__})"
                raise PassRunError(self.name, f"{where}: {exc}") from exc
            ctx.logger.info("applied surgeon %s", type(surgeon).__name__)
        if cfg.remove_duplicate_initializers:
            ir_model = current if isinstance(current, ir.Model) else ir.from_proto(current)
            current = DeduplicateHashedInitializersPass()(ir_model).model
        return write_output(_declare_domains(_as_proto(current)), model, output_dir, cfg)


def _declare_domains(proto: Any) -> Any:
    """Every operator domain a node uses gets an opset import (version 1 for contrib domains such as
    ``com.microsoft``): a surgeon that adds such a node to a model without one leaves a model that
    onnxruntime and onnx.checker refuse."""
    from onnx import helper

    local = {f.domain for f in proto.functions} - {"", "ai.onnx"}
    holders = [(proto.opset_import, proto.graph.node)] + [(f.opset_import, f.node) for f in proto.functions]
    for imports, nodes in holders:
        declared = {o.domain for o in imports}
        for domain in sorted(_domains(nodes) - declared - {"", "ai.onnx"}):
            imports.append(helper.make_opsetid(domain, 1))
            if domain not in local and domain not in {o.domain for o in proto.opset_import}:
                proto.opset_import.append(helper.make_opsetid(domain, 1))
    return proto


def _domains(nodes: Any) -> set[str]:
    """The operator domains of ``nodes`` and of the subgraphs in their attributes (Loop, If, Scan)."""
    return {node.domain for node in walk_nodes(nodes)}


def _as_proto(model: Any) -> Any:
    import onnx_ir as ir

    return ir.to_proto(model) if isinstance(model, ir.Model) else model
