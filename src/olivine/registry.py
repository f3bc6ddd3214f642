"""One lazy registry mechanism for every plugin family (passes, hosts, datastores, metrics, samplers).

Entries map a name to ``"module:attribute"``; the module is imported only when the entry is used, so
``import olivine`` never pulls in torch or onnxruntime. A failed import of a third-party package becomes a
:class:`MissingDependencyError` carrying the pip command that fixes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from olivine.errors import MissingDependencyError, NotSupportedError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, family: str, *, case_insensitive: bool = True) -> None:
        self.family = family
        self._case_insensitive = case_insensitive
        self._entries: dict[str, tuple[str, str, str]] = {}  # key -> (display name, target, extra)

    def _key(self, name: str) -> str:
        return name.lower() if self._case_insensitive else name

    def register(self, name: str, target: str, *, extra: str = "") -> None:
        """Register ``name`` -> ``"package.module:Attr"``; ``extra`` is the pip extra it needs."""
        self._entries[self._key(name)] = (name, target, extra)

    def names(self) -> list[str]:
        return sorted(display for display, _, _ in self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def canonical_name(self, name: str) -> str:
        return self._lookup(name)[0]

    def _lookup(self, name: str) -> tuple[str, str, str]:
        try:
            return self._entries[self._key(name)]
        except KeyError:
            allowed = ", ".join(self.names())
            raise NotSupportedError(f"unknown {self.family} '{name}'; allowed: {allowed}") from None

    def get(self, name: str) -> T:
        display, target, extra = self._lookup(name)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("olivine"):
                hint = f"pip install 'olivine[{extra}]'" if extra else f"pip install {exc.name}"
                raise MissingDependencyError(
                    f"{self.family} '{display}' needs the package '{exc.name}': {hint}"
                ) from exc
            raise
        obj: T = getattr(module, attr)
        return obj
