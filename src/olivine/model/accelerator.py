"""The target accelerator: device plus onnxruntime execution providers, in order of preference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Accelerator:
    device: str = "cpu"
    execution_providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "execution_providers": list(self.execution_providers)}

    def __str__(self) -> str:
        return f"{self.device}-{','.join(self.execution_providers)}"
