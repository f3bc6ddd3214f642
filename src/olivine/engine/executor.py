"""The candidate executor seam: who realises the proposals of one batch.

:class:`SerialExecutor` (the default) realises them one after another in the engine's process. A spread
search (:class:`SpreadSettings`, set by ``search_workers`` on a system) uses
:class:`olivine.engine.ray_executor.RayExecutor` (``executor="ray"``: each candidate is a Ray task on the
cluster) or :class:`olivine.engine.pool_executor.LocalPoolExecutor` (``executor="local"``: worker
processes on this machine, from a LocalSystem or LocalWorker system's ``search_workers``). Whatever
the executor, candidates come back in proposal order, so the walk hears results in the order the serial
search would, and the same seed gives the same candidates and the same best model.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from olivine.config.evaluators import EvaluatorConfig
from olivine.engine.candidates import Candidate
from olivine.engine.realise import CandidateWork
from olivine.errors import ConfigError, HostError
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.resolve import ResolvedWorkflow

TIMED_TYPES = ("latency", "throughput")
EXECUTORS = ("ray", "local")


class CandidateExecutor(Protocol):
    """Realises batches of proposals; yields their candidates in proposal order."""

    @property
    def width(self) -> int:
        """How many proposals it takes at once (the walk's batch size)."""
        ...

    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """The candidates of ``batch``, in its order. The caller may stop iterating early (the walk
        stopped): work not consumed yet is dropped."""
        ...

    def close(self) -> None: ...


class SerialExecutor:
    """One candidate at a time, in this process."""

    width = 1

    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        for proposal in batch:
            yield work.realise(proposal, total)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class SpreadSettings:
    """A spread search (a job's ``search_spread``).

    Attributes:
        workers: how many candidates are in flight at once (each one task).
        num_cpus: CPUs each task reserves: the threads a timed run uses. Each task claims
            ``ceil(num_cpus)`` CPUs of its own and pins its threads to them
            (:func:`olivine.engine.affinity.exclusive_cpus`), so timed runs never share a CPU.
        address: the Ray cluster's GCS address; None inside a Ray job (its driver finds its own
            cluster) and for the local executor.
        executor: ``ray`` (tasks on a Ray cluster) or ``local`` (worker processes on this machine).
    """

    workers: int
    num_cpus: float
    address: str | None = None
    executor: Literal["ray", "local"] = "ray"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpreadSettings:
        data = dict(data)
        kind = data.get("executor")
        if kind not in EXECUTORS:
            known = ", ".join(EXECUTORS)
            raise HostError(f"search_spread executor '{kind}' is unknown (known: {known}): a newer Olivine?")
        return cls(**data)


def executor_for(settings: SpreadSettings | None) -> CandidateExecutor:
    if settings is None:
        return SerialExecutor()
    if settings.executor == "local":
        from olivine.engine.pool_executor import LocalPoolExecutor

        return LocalPoolExecutor(settings)
    if settings.executor != "ray":
        raise HostError(f"search_spread executor '{settings.executor}' is not available in this Olivine")
    from olivine.engine.ray_executor import RayExecutor

    return RayExecutor(settings)


def timed_threads(evaluator: EvaluatorConfig | None) -> tuple[int | None, list[str]]:
    """The most onnxruntime intra-op threads a timed metric of ``evaluator`` uses, and the timed metrics
    that leave it unset (onnxruntime then takes every core: such a run cannot be given its own CPUs)."""
    threads: int | None = None
    unpinned: list[str] = []
    for metric in evaluator.metrics if evaluator is not None else []:
        if metric.type not in TIMED_TYPES:
            continue
        settings = metric.user_config.inference_settings if metric.user_config else None
        options = settings.onnx.session_options if settings and settings.onnx else None
        count = options.intra_op_num_threads if options is not None else None
        if not isinstance(count, int) or count <= 0:
            unpinned.append(metric.name)
        else:
            threads = max(threads or 0, count)
    return threads, unpinned


def spread_task_cpus(
    wf: ResolvedWorkflow, configured: float | None, *, where: str, each: str, key: str, file: str | None
) -> float:
    """The CPUs each candidate of a spread search gets: ``configured`` (``search_task_cpus``), else the
    timed metrics' ``intra_op_num_threads``. Refused, naming ``key``, without a search strategy or when a
    timed metric leaves its thread count unset (onnxruntime would time on every core while other
    candidates run). ``where``: where the candidates run; ``each``: what claims the CPUs (for messages)."""
    if wf.search is None:
        raise ConfigError(
            f"runs a search's candidates {where}, and this workflow has no engine.search_strategy: remove "
            "search_workers or add a search_strategy",
            path=key,
            file=file,
        )
    if configured is not None:
        return float(configured)
    threads, unpinned = timed_threads(wf.evaluator)
    if unpinned:
        raise ConfigError(
            f"the timed metric(s) {', '.join(unpinned)} leave user_config.inference_settings.onnx."
            "session_options.intra_op_num_threads unset, so onnxruntime would time each candidate on every "
            f"core while other candidates run: pin it ({each} then claims that many CPUs) or set "
            "search_task_cpus",
            path=key,
            file=file,
        )
    return float(threads or 1)
