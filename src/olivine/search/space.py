"""The search space: which pass chains a workflow may produce, built once when the workflow is resolved.

A workflow's ``passes`` is an ordered list of *slots* (the keys of ``passes``). A slot holds one or more
*options* (a ``passes`` entry that is a list gives alternatives); an option is a pass type with fixed
parameters and zero or more *dimensions*, each a parameter with a tuple of choices (from
``"SEARCHABLE_VALUES"``, an explicit list of choices, or, under search, a searchable parameter the config
leaves unset, as Olive does).

Points are numbered the way Olive numbers them (``olive/search/search_space.py``), so the sequential
sampler proposes Olive's order: mixed radix with the first slot varying fastest; inside a slot the options
are contiguous blocks in config order; inside an option the first dimension varies fastest.

This module imports no engine: a :class:`SearchSpace` is data plus pure index arithmetic.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from olivine.model.accelerator import Accelerator
from olivine.passes.base import Pass, PassConfig


@dataclass(frozen=True)
class Dimension:
    """One searched parameter of an option and its choices, in order."""

    param: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class ResolvedPass:
    """A concrete step of a chain: a slot name, its pass type and a validated config."""

    name: str  # the key in ``passes``
    type: str  # canonical pass type name
    cls: builtins.type[Pass]  # `type` is a field name here
    config: PassConfig

    def canonical_config(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


@dataclass(frozen=True)
class PassOption:
    """One alternative of a slot: a pass type, its fixed parameters (as given, JSON) and its dimensions."""

    type: str
    cls: builtins.type[Pass]
    fixed: Mapping[str, Any]
    dims: tuple[Dimension, ...] = ()
    #: Parameters whose value follows their parents' (the pass's ``conditional_search_values``).
    conditional: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return math.prod(len(d.choices) for d in self.dims)

    def values_at(self, index: int) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for dim in self.dims:
            index, pos = divmod(index, len(dim.choices))
            values[dim.param] = dim.choices[pos]
        return values

    def positions(self, values: Mapping[str, Any]) -> int:
        """The index of ``values`` (the inverse of :meth:`values_at`)."""
        index, radix = 0, 1
        for dim in self.dims:
            index += _position(dim.choices, values[dim.param]) * radix
            radix *= len(dim.choices)
        return index

    def build(self, name: str, values: Mapping[str, Any], accelerator: Accelerator) -> ResolvedPass | str:
        """The concrete step for ``values``, or the reason this combination is invalid."""
        given = {**self.fixed, **values}
        try:
            config = self.cls.config_class.model_validate(given)
            derived = self._conditional_values(config)
            if isinstance(derived, str):
                return f"passes.{name} ({self.type}): {derived}"
            if derived:
                config = self.cls.config_class.model_validate({**given, **derived})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return f"passes.{name}{'.' + where if where else ''}: {first['msg']}"
        reason = self.cls.invalid_reason(config, accelerator)
        if reason:
            return f"passes.{name} ({self.type}): {reason}"
        return ResolvedPass(name=name, type=self.type, cls=self.cls, config=config)

    def _conditional_values(self, config: PassConfig) -> dict[str, Any] | str:
        """The conditional parameters' values for ``config``'s parents, or why the point is invalid."""
        from olivine.passes.base import IGNORED_CHOICE, INVALID_CHOICE

        derived: dict[str, Any] = {}
        for param in self.conditional:
            rule = self.cls.conditional_search_values[param]
            value = rule.value_for(config)
            if value == INVALID_CHOICE:
                parents = ", ".join(f"{p}={getattr(config, p)}" for p in rule.parents)
                return f"{param} has no valid search value for {parents} (Olive's conditional search values)"
            if value != IGNORED_CHOICE:
                derived[param] = value
        return derived


@dataclass(frozen=True)
class PassSlot:
    name: str
    options: tuple[PassOption, ...]

    @property
    def size(self) -> int:
        return sum(option.size for option in self.options)

    def locate(self, index: int) -> tuple[int, dict[str, Any]]:
        """(option index, parameter values) of the slot's ``index``-th point."""
        for pos, option in enumerate(self.options):
            if index < option.size:
                return pos, option.values_at(index)
            index -= option.size
        raise IndexError(index)

    def position(self, option: int, values: Mapping[str, Any]) -> int:
        return sum(o.size for o in self.options[:option]) + self.options[option].positions(values)


@dataclass(frozen=True)
class Choice:
    """What a point picks in one slot."""

    slot: str
    option: int
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    index: int  # in its space
    choices: tuple[Choice, ...]


class SearchSpace:
    """The product of its slots' points (one slot per pass-by-pass step; all slots for joint)."""

    def __init__(self, slots: Sequence[PassSlot]) -> None:
        self.slots = tuple(slots)

    def __len__(self) -> int:
        return math.prod(slot.size for slot in self.slots)

    @property
    def searched(self) -> bool:
        return len(self) > 1

    def point(self, index: int) -> Point:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rest, choices = index, []
        for slot in self.slots:
            rest, pos = divmod(rest, slot.size)
            option, values = slot.locate(pos)
            choices.append(Choice(slot.name, option, values))
        return Point(index, tuple(choices))

    def index_of(self, choices: Sequence[Choice]) -> int:
        index, radix = 0, 1
        for slot, choice in zip(self.slots, choices, strict=True):
            index += slot.position(choice.option, choice.values) * radix
            radix *= slot.size
        return index

    def steps(self, point: Point, accelerator: Accelerator) -> list[ResolvedPass] | str:
        """The concrete chain of ``point``, or why it is invalid."""
        out: list[ResolvedPass] = []
        for slot, choice in zip(self.slots, point.choices, strict=True):
            step = slot.options[choice.option].build(slot.name, choice.values, accelerator)
            if isinstance(step, str):
                return step
            out.append(step)
        return out

    def describe(self, point: Point) -> dict[str, Any]:
        """Only the searched dimensions: ``"<pass>.<param>"`` -> value, and ``"<pass>"`` -> the chosen
        option's index when the slot has alternatives."""
        out: dict[str, Any] = {}
        for slot, choice in zip(self.slots, point.choices, strict=True):
            if len(slot.options) > 1:
                out[slot.name] = choice.option
            for key, value in choice.values.items():
                out[f"{slot.name}.{key}"] = value
        return out


def _position(choices: tuple[Any, ...], value: Any) -> int:
    for pos, choice in enumerate(choices):
        if choice == value and type(choice) is type(value):
            return pos
    return choices.index(value)
