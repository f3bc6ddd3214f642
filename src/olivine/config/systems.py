"""Systems (Olive's ``systems`` mapping). Each host type has its config model here; its behaviour lives in
the matching module of :mod:`olivine.hosts`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from olivine.config.base import StrictModel
from olivine.config.typed import flatten_typed


class AcceleratorConfig(StrictModel):
    device: Literal["cpu", "gpu", "npu"] = "cpu"
    execution_providers: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _device_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"an accelerator is a mapping since Olive 0.6 (a bare device name '{value}' is the form of "
                f"Olive 0.5 and before); use {{device: {value.lower()}, execution_providers: [...]}}"
            )
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class SystemBase(StrictModel):
    accelerators: list[AcceleratorConfig] | None = None

    @classmethod
    def system_type(cls) -> str:
        """The ``type`` value of this system: written once, in the class's ``type`` field."""
        return str(cls.model_fields["type"].default)

    def default_datastore(self) -> str | None:
        """The datastore the system's jobs export to unless told otherwise (Olive's ``datastores``)."""
        return None


class LocalSystemConfig(SystemBase):
    """Runs in this process. As a ``workflow_host`` it runs in the foreground (as Olive did)."""

    type: Literal["LocalSystem"] = "LocalSystem"


class LocalWorkerConfig(SystemBase):
    """A detached worker process on this machine: the embedded default host for remote workflows."""

    type: Literal["LocalWorker"] = "LocalWorker"
    datastores: str | None = None
    python: str | None = Field(default=None, description="interpreter for the worker; default: this one")
    cancel_grace_s: float = Field(default=10.0, ge=0, le=24 * 3600)

    def default_datastore(self) -> str | None:
        return self.datastores


class RayConfig(SystemBase):
    """A Ray cluster, through its Jobs API: the job runs on the cluster and outlives the submitter."""

    type: Literal["Ray"] = "Ray"
    address: str = Field(description="the Ray dashboard / Jobs API address, e.g. http://head:8265")
    runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description="runtime_env additions (env_vars, pip, ...); Olivine sets working_dir itself",
    )
    entrypoint_num_cpus: float | None = None
    entrypoint_memory: int | None = Field(default=None, description="bytes reserved for the worker")
    entrypoint_resources: dict[str, float] | None = None
    datastores: str | None = None
    python: str = Field(default="python", description="the interpreter on the cluster that has Olivine")
    cancel_grace_s: float = Field(default=10.0, ge=1.0)
    working_dir_max_bytes: int = Field(
        default=50_000_000,
        ge=0,
        description="bundles up to this size travel as Ray's working_dir; larger ones via the datastore",
    )

    @field_validator("runtime_env")
    @classmethod
    def _no_working_dir(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "working_dir" in value:
            raise ValueError("runtime_env.working_dir is set by Olivine (the job folder); remove it")
        return value

    def default_datastore(self) -> str | None:
        return self.datastores


_SYSTEMS: tuple[type[SystemBase], ...] = (LocalSystemConfig, LocalWorkerConfig, RayConfig)
SYSTEM_TYPES = {cls.system_type().lower(): cls.system_type() for cls in _SYSTEMS}
KNOWN_OLIVE_SYSTEMS = {"pythonenvironment", "docker", "azureml", "isolatedort"}

SystemConfig = Annotated[LocalSystemConfig | LocalWorkerConfig | RayConfig, Field(discriminator="type")]


def olive_only_type(value: Any) -> str | None:
    """The type name of a system Olive has and Olivine does not (None for any other value)."""
    if isinstance(value, dict):
        kind = str(value.get("type", ""))
        if kind.lower() in KNOWN_OLIVE_SYSTEMS and kind.lower() not in SYSTEM_TYPES:
            return kind
    return None


def normalize_system(value: Any) -> Any:
    if olive_only_type(value) is not None:
        from olivine.errors import ConfigError

        raise ConfigError(
            f"system type '{value['type']}' is valid in Olive but not supported by Olivine yet; "
            f"supported: {', '.join(sorted(SYSTEM_TYPES.values()))}",
            path="type",
        )
    return flatten_typed(value, SYSTEM_TYPES, what="system type")
