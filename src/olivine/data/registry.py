"""Olive's data-component registry, for user scripts.

A user script registers its own components with Olive's decorators::

    from olivine.data.registry import Registry   # or, unchanged, from olive.data.registry

    @Registry.register_dataset()
    def my_dataset(data_dir, split="test"): ...

    @Registry.register_post_process("my_post")
    def post(output): ...

Names are case-insensitive (default: the function name). Registrations are remembered per defining module,
so two user scripts may register the same name without clashing: a data config looks its component types up
in its own ``user_script`` first, then among Olivine's built-in components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar, get_args

ComponentKind = Literal["load_dataset", "pre_process_data", "post_process_data", "dataloader"]
COMPONENT_KINDS: tuple[ComponentKind, ...] = get_args(ComponentKind)

#: Olive's names for the default component of each kind.
DEFAULT_NAMES: dict[ComponentKind, str] = {
    "load_dataset": "default_load_dataset",
    "pre_process_data": "default_pre_process_data",
    "post_process_data": "default_post_process_data",
    "dataloader": "default_dataloader",
}

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Olive-compatible decorators that register user data components (class methods only)."""

    # module name -> kind -> lower-cased component name -> callable
    _BY_MODULE: ClassVar[dict[str, dict[str, dict[str, Callable[..., Any]]]]] = {}

    @classmethod
    def register(cls, sub_type: Any, name: str | None = None) -> Callable[[F], F]:
        """Register a component of kind ``sub_type`` (a kind name, or Olive's enum member)."""
        kind = str(getattr(sub_type, "value", sub_type))
        if kind not in COMPONENT_KINDS:
            raise ValueError(f"unknown data component kind '{kind}'; allowed: {', '.join(COMPONENT_KINDS)}")

        def decorator(component: F) -> F:
            key = (name if name is not None else component.__name__).lower()
            module = getattr(component, "__module__", "") or ""
            cls._BY_MODULE.setdefault(module, {}).setdefault(kind, {})[key] = component
            return component

        return decorator

    @classmethod
    def register_dataset(cls, name: str | None = None) -> Callable[[F], F]:
        return cls.register("load_dataset", name)

    @classmethod
    def register_pre_process(cls, name: str | None = None) -> Callable[[F], F]:
        return cls.register("pre_process_data", name)

    @classmethod
    def register_post_process(cls, name: str | None = None) -> Callable[[F], F]:
        return cls.register("post_process_data", name)

    @classmethod
    def register_dataloader(cls, name: str | None = None) -> Callable[[F], F]:
        return cls.register("dataloader", name)

    @classmethod
    def register_default_dataset(cls) -> Callable[[F], F]:
        return cls.register("load_dataset", DEFAULT_NAMES["load_dataset"])

    @classmethod
    def register_default_pre_process(cls) -> Callable[[F], F]:
        return cls.register("pre_process_data", DEFAULT_NAMES["pre_process_data"])

    @classmethod
    def register_default_post_process(cls) -> Callable[[F], F]:
        return cls.register("post_process_data", DEFAULT_NAMES["post_process_data"])

    @classmethod
    def register_default_dataloader(cls) -> Callable[[F], F]:
        return cls.register("dataloader", DEFAULT_NAMES["dataloader"])

    @classmethod
    def registered(cls, module: str, kind: ComponentKind) -> dict[str, Callable[..., Any]]:
        """The components of ``kind`` that ``module`` registered (lower-cased name -> callable)."""
        return dict(cls._BY_MODULE.get(module, {}).get(kind, {}))
