"""Systems (Olive's ``systems`` mapping). Each host type has its config model here; its behaviour lives in
the matching module of :mod:`olivine.hosts`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from olivine.config.azureml import AzureMLClientConfig, AzureMLDockerConfig, AzureMLEnvironmentConfig
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

    def with_azureml_client(self, client: AzureMLClientConfig | None) -> SystemBase:
        """This system given a workflow's (or hosts file's) ``azureml_client``; only Azure ML uses it."""
        return self


class _LocalSearchPool(SystemBase):
    """Olivine's: a search's candidates in worker processes on this machine (see
    :mod:`olivine.engine.pool_executor`); the keys mirror the Ray system's."""

    search_workers: int = Field(
        default=0,
        ge=0,
        description="Olivine's: with a search strategy, up to this many candidates run at once, each in a "
        "worker process on this machine with CPUs of its own (0: one after another in this process)",
    )
    search_task_cpus: float | None = Field(
        default=None,
        gt=0,
        description="CPUs each candidate claims for itself; default: the intra_op_num_threads of the "
        "timed metrics (so a timed run never shares a CPU with another candidate)",
    )


class LocalSystemConfig(_LocalSearchPool):
    """Runs in this process. As a ``workflow_host`` it runs in the foreground (as Olive did)."""

    type: Literal["LocalSystem"] = "LocalSystem"


class LocalWorkerConfig(_LocalSearchPool):
    """A detached worker process on this machine: the embedded default host for remote workflows."""

    type: Literal["LocalWorker"] = "LocalWorker"
    datastores: str | None = None
    python: str | None = Field(default=None, description="interpreter for the worker; default: this one")
    cancel_grace_s: float = Field(default=10.0, ge=0, le=24 * 3600)

    def default_datastore(self) -> str | None:
        return self.datastores


class AzureMLConfig(SystemBase):
    """An Azure ML workspace: the workflow runs there as one command job (Olive's ``AzureML`` fields).

    ``azureml_client_config`` is filled from the workflow's (or the hosts file's) ``azureml_client`` when
    the system has none, as Olive did.
    """

    type: Literal["AzureML"] = "AzureML"
    aml_compute: str
    aml_docker_config: AzureMLDockerConfig | None = None
    aml_environment_config: AzureMLEnvironmentConfig | None = None
    datastores: str = "workspaceblobstore"
    tags: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, Any] | None = None
    instance_count: int = Field(default=1, ge=1)
    hf_token: bool | None = None
    is_dev: bool = False
    azureml_client_config: AzureMLClientConfig | None = None
    experiment_name: str = Field(default="olivine", description="Olivine's: the Azure ML experiment")

    @model_validator(mode="after")
    def _environment_given(self) -> AzureMLConfig:
        if self.aml_docker_config is None and self.aml_environment_config is None:
            raise ValueError("give aml_environment_config or aml_docker_config (the job's environment)")
        return self

    def default_datastore(self) -> str | None:
        return self.datastores

    def with_azureml_client(self, client: AzureMLClientConfig | None) -> AzureMLConfig:
        if self.azureml_client_config is not None or client is None:
            return self
        return self.model_copy(update={"azureml_client_config": client})

    def environment(self) -> str | dict[str, Any]:
        """The job's environment: a registered one by reference, else one built from the docker config."""
        if self.aml_environment_config is not None:
            return self.aml_environment_config.reference()
        docker = self.aml_docker_config
        assert docker is not None
        spec: dict[str, Any] = {"name": docker.name, "version": docker.version}
        if docker.build_context_path:
            spec["build"] = {
                "path": docker.build_context_path,
                "dockerfile_path": docker.dockerfile or "Dockerfile",
            }
        else:
            spec.update(image=docker.base_image, conda_file=docker.conda_file_path)
        return spec


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
    search_workers: int = Field(
        default=0,
        ge=0,
        description="Olivine's: with a search strategy, up to this many candidates run at once, each as a "
        "Ray task on the cluster (0: one after another in the job's process)",
    )
    search_task_cpus: float | None = Field(
        default=None,
        gt=0,
        description="CPUs each candidate's task reserves; default: the intra_op_num_threads of the timed "
        "metrics (so a timed run never shares a CPU)",
    )
    search_timing: Literal["auto", "apart", "in_place"] = Field(
        default="auto",
        description="Olivine's: where a spread search times its candidates: auto (in its task when the task "
        "holds every CPU of its node, else alone after the batch's untimed work), apart (always alone), "
        "in_place (always in its task, beside the other tasks)",
    )

    @field_validator("runtime_env")
    @classmethod
    def _no_working_dir(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "working_dir" in value:
            raise ValueError("runtime_env.working_dir is set by Olivine (the job folder); remove it")
        return value

    def default_datastore(self) -> str | None:
        return self.datastores


_SYSTEMS: tuple[type[SystemBase], ...] = (LocalSystemConfig, LocalWorkerConfig, RayConfig, AzureMLConfig)
SYSTEM_TYPES = {cls.system_type().lower(): cls.system_type() for cls in _SYSTEMS}
KNOWN_OLIVE_SYSTEMS = {"pythonenvironment", "docker", "isolatedort"}

SystemConfig = Annotated[
    LocalSystemConfig | LocalWorkerConfig | RayConfig | AzureMLConfig, Field(discriminator="type")
]


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
