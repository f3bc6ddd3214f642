"""The host contract and the host registry.

A host takes a bundle and a job record that is already persisted (``PENDING``) and makes a worker run
it: :meth:`Host.submit`, :meth:`Host.status`, :meth:`Host.logs`, :meth:`Host.cancel`. Reading a job
(:meth:`Host.observe`, :meth:`Host.status`, :meth:`Host.logs`) writes nothing; :meth:`Host.monitor` is
the one explicit step that records what it observed and seals the export of a job whose worker died.
What a worker elsewhere says comes back through its status (:mod:`olivine.jobs.status`). Everything a
particular host type knows (processes, clusters, clouds) lives in its own module; callers only ever see
this class (no ``if host.type == ...`` anywhere else).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import TypeAdapter

from olivine.config.systems import (
    AzureMLConfig,
    LocalSystemConfig,
    LocalWorkerConfig,
    RayConfig,
    SystemBase,
    SystemConfig,
)
from olivine.errors import HostError
from olivine.jobs.bundle import Bundle
from olivine.jobs.folder import JobFolder
from olivine.jobs.records import JobRecord, JobSpec
from olivine.jobs.store import JobStore
from olivine.registry import Registry

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.jobs.choice import DatastoreChoice
    from olivine.jobs.profiles import Profiles

_FOLLOW_POLL_S = 0.2


class Host(ABC):
    """A place where workflows run.

    Args:
        name: the host's name (a key of the workflow's ``systems`` or of the hosts file).
        config: its system config.
        store: the job store its records live in.
    """

    #: The system config class this host runs; its ``type`` is the host's type name.
    config_type: ClassVar[type[SystemBase]]
    #: True when :meth:`submit` returns while the workflow still runs, so the job outlives the caller.
    detached: ClassVar[bool] = True

    def __init__(self, name: str, config: SystemConfig, store: JobStore) -> None:
        self.name = name
        self.config = config
        self.store = store

    @classmethod
    def type_name(cls) -> str:
        return cls.config_type.system_type()

    def describe(self) -> str:
        """One line for ``--dry-run`` and logs: where jobs run."""
        return f"host '{self.name}' ({self.type_name()})"

    def default_datastore(self) -> str | None:
        """The datastore name the host's config selects, if any (Olive's ``datastores`` key)."""
        return self.config.default_datastore()

    def resolve_datastore(
        self, name: str, profiles: Profiles, wf: ResolvedWorkflow | None, *, dry_run: bool
    ) -> DatastoreChoice | None:
        """The datastore a name means on this host, when the host knows better than the generic
        lookup (e.g. an Azure ML datastore name); None: the generic lookup decides."""
        return None

    def dry_run_details(self, spec: JobSpec) -> str:
        """Extra text for ``--dry-run`` about the job ``spec`` would be (e.g. a cloud job's definition)."""
        return ""

    def search_spread(self, wf: ResolvedWorkflow) -> dict[str, Any] | None:
        """How the job's worker spreads ``wf``'s search (the job spec's ``search_spread``); None: one
        candidate after another. Raise :class:`ConfigError` for a setting that cannot apply to ``wf``."""
        return None

    def new_host_info(self) -> dict[str, Any]:
        """The host's own part of a new job record (``host_info``), written before anything launches."""
        return {}

    def check(self) -> None:
        """Called before a job is persisted: raise :class:`HostError` when the host cannot take jobs
        (e.g. an extra is not installed), so nothing is written for a submission that cannot run."""
        return None

    @abstractmethod
    def submit(self, bundle: Bundle, job: JobRecord, spec: JobSpec) -> JobRecord:
        """Start running ``job`` and return its record; detached hosts return within about a second.

        ``job`` is already in the store (``PENDING``) and ``spec`` written to its job folder; a failure
        to launch marks the job ``FAILED`` (error kind ``infrastructure``) and raises :class:`HostError`.
        """

    # -- reading a job: no writes ------------------------------------------------------------------
    def observe(self, job: JobRecord) -> JobRecord:
        """``job`` as it is now, from the host's view of its worker; writes nothing.

        E.g. a job whose worker died is returned FAILED (error kind ``infrastructure``); the store is
        not changed until :meth:`monitor` is called.
        """
        return job

    def observe_all(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """:meth:`observe` for many jobs of this host; hosts that ask a service override it to ask once."""
        return [self.observe(job) for job in jobs]

    def status(self, job_id: str) -> JobRecord:
        """The job's current record (:meth:`observe` of the stored one); writes nothing."""
        return self.observe(self.store.get(job_id))

    @abstractmethod
    def logs(self, job_id: str, *, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow``, keep yielding until the job ends."""

    # -- changing a job -----------------------------------------------------------------------------
    def monitor(self, job: JobRecord) -> JobRecord:
        """The monitor: persist what :meth:`observe` sees, and seal the export of a job that ended
        without its worker doing it (a dead worker). Idempotent; returns the stored record."""
        if job.state.is_terminal():
            return job
        before, after = self.store.sync(self.observe(job))
        if after.state.is_terminal() and not before.state.is_terminal():
            self.close_export(after)
        return after

    def close_export(self, job: JobRecord) -> bool:
        """Seal the export of a job the store says is over (no-op when its worker sealed it)."""
        from olivine.jobs.abandoned import close_export

        return close_export(job, self.worker_folder(job))

    def worker_folder(self, job: JobRecord) -> JobFolder | None:
        """The folder the job's worker runs in, when it is on this machine (None: elsewhere)."""
        return None

    @abstractmethod
    def cancel(self, job_id: str, *, timeout_s: float | None = None) -> JobRecord:
        """Stop the job: ask it to stop, force it after ``timeout_s``; return the final record.

        Cancelling a job that already ended changes nothing and returns its record.
        """

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 0.5) -> JobRecord:
        """Block until the job ends (or ``timeout_s`` passes) and return its record (monitored)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.monitor(self.store.get(job_id))
            if job.state.is_terminal() or (deadline is not None and time.monotonic() >= deadline):
                return job
            time.sleep(poll_s)

    def _export_lines(self, job: JobRecord, follow: bool) -> Iterator[str]:
        """The log the worker exported to the datastore (for workers whose log is not readable here)."""
        from olivine.jobs.remote import job_export_logs

        finished = (lambda: self.status(job.job_id).state.is_terminal()) if follow else None
        return job_export_logs(job, finished)

    def _file_lines(self, path: Path, job_id: str, follow: bool) -> Iterator[str]:
        """Lines of a local log file; with ``follow``, tail it until the job is terminal."""
        return tail_lines(path, lambda: self.status(job_id).state.is_terminal() if follow else True)


def tail_lines(path: Path, finished: Callable[[], bool]) -> Iterator[str]:
    """Yield the lines of ``path`` (without newlines) and keep tailing it until ``finished()`` is true.

    ``finished`` is asked only at the end of the file; one more read after it says true catches lines
    written just before the job ended.
    """
    while not path.exists():
        if finished():
            return
        time.sleep(_FOLLOW_POLL_S)
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        partial = ""
        while True:
            chunk = fh.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial.rstrip("\n")
                    partial = ""
                continue
            if finished():
                rest = partial + fh.read()
                yield from rest.splitlines()
                return
            time.sleep(_FOLLOW_POLL_S)


HOSTS: Registry[type[Host]] = Registry("host")
HOSTS.register(LocalSystemConfig.system_type(), "olivine.hosts.local:LocalSystemHost")
HOSTS.register(LocalWorkerConfig.system_type(), "olivine.hosts.local_worker:LocalWorkerHost")
HOSTS.register(RayConfig.system_type(), "olivine.hosts.ray:RayHost", extra="ray")
HOSTS.register(AzureMLConfig.system_type(), "olivine.hosts.azureml:AzureMLHost", extra="azureml")


def host_for(name: str, config: SystemConfig, store: JobStore) -> Host:
    """The host object for a system config.

    Raises:
        NotSupportedError: no host is registered for the system's type.
        HostError: the host class does not match the type it is registered under.
    """
    cls = HOSTS.get(config.type)
    if not isinstance(config, cls.config_type):
        raise HostError(f"host class {cls.__name__} runs '{cls.type_name()}', not '{config.type}'")
    return cls(name, config, store)


_SYSTEM_CONFIG: TypeAdapter[SystemConfig] = TypeAdapter(SystemConfig)


def host_of(job: JobRecord, store: JobStore) -> Host:
    """The host that runs ``job``, rebuilt from the system config stored in its record."""
    return host_for(job.host_name, _SYSTEM_CONFIG.validate_python(job.host_config), store)
