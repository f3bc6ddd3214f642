"""The candidate executor seam: who realises the proposals of one batch.

:class:`SerialExecutor` (the default) realises them one after another in the engine's process. A spread
search (:class:`SpreadSettings`, set by ``search_workers`` on a system) uses
:class:`olivine.engine.ray_executor.RayExecutor` (``executor="ray"``: each candidate is a Ray task on the
cluster) or :class:`olivine.engine.pool_executor.LocalPoolExecutor` (``executor="local"``: worker
processes on this machine, from a LocalSystem or LocalWorker system's ``search_workers``). Whatever
the executor, candidates come back in proposal order, so the walk hears results in the order the serial
search would, and the same seed gives the same candidates and the same best model.

The input model of a search is evaluated through the executor too (:func:`evaluate_input`): an executor
with an ``evaluate_input`` method may evaluate it elsewhere (on CPUs of its own) and meanwhile start
work that does not touch those CPUs (the chain prefix every candidate shares, its workers' imports);
one without evaluates it in the engine's process, as :class:`SerialExecutor` does.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from olivine.config.evaluators import EvaluatorConfig
from olivine.engine.candidates import Candidate
from olivine.engine.realise import CandidateWork
from olivine.errors import ConfigError, HostError
from olivine.search.space import PassSlot, ResolvedPass
from olivine.search.strategy import Proposal, SearchWalk

if TYPE_CHECKING:
    from olivine.engine.chain import ChainRunner
    from olivine.engine.evaluation import CachedEvaluator, Evaluation
    from olivine.engine.phase import Phases
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.model.accelerator import Accelerator
    from olivine.model.handle import ModelHandle

TIMED_TYPES = ("latency", "throughput")
EXECUTORS = ("ray", "local")


@dataclass
class InputWork:
    """What evaluating a search's input model needs (see :func:`evaluate_input`).

    Attributes:
        runner: the search's chain runner (its cache, input model, accelerator, data configs).
        evaluator: the search's evaluator.
        model_id, model: the input model.
        phases: the engine's phases (progress).
        stop: the engine's stop event (a cancel).
        reference: the input model is a search's reference (reference timing, see
            :mod:`olivine.engine.evaluation`).
        prefix: the leading steps every candidate runs with the same configuration
            (:func:`fixed_prefix`); an executor may run them meanwhile, on other CPUs, so that they are in
            the cache when the first candidates need them. () when there are none.
        ran_on: set by an executor that evaluated the input model elsewhere: where and when (as a
            candidate's ``ran_on``); it goes in the footprint's input record.
    """

    runner: ChainRunner
    evaluator: CachedEvaluator
    model_id: str
    model: ModelHandle
    phases: Phases
    stop: threading.Event | None
    reference: bool
    prefix: tuple[ResolvedPass, ...] = ()
    ran_on: dict[str, Any] | None = None


def evaluate_in_process(work: InputWork) -> Evaluation:
    """The input model's evaluation in the engine's process (the serial search's way)."""
    return work.evaluator.evaluate(
        work.model_id,
        work.model,
        "input model",
        progress=work.phases.reporter("evaluating input model"),
        reference=work.reference,
    )


def evaluate_input(executor: CandidateExecutor | None, work: InputWork) -> Evaluation:
    """The input model's evaluation through ``executor``'s ``evaluate_input`` when it has one (an
    optional method of :class:`CandidateExecutor`), else in the engine's process."""
    method = getattr(executor, "evaluate_input", None)
    if method is None:
        return evaluate_in_process(work)
    evaluation: Evaluation = method(work)
    return evaluation


def batch_width(executor: CandidateExecutor, walk: SearchWalk) -> int:
    """How many proposals ``executor`` takes from ``walk`` at once: its ``batch_width(walk)`` when it has
    one (an optional method of :class:`CandidateExecutor`), else its :attr:`~CandidateExecutor.width`."""
    method = getattr(executor, "batch_width", None)
    if method is None:
        return executor.width
    width: int = method(walk)
    return width


def fixed_prefix(slots: Sequence[PassSlot], accelerator: Accelerator) -> tuple[ResolvedPass, ...]:
    """The leading steps that every candidate of a search over ``slots`` runs with the same
    configuration (slots with one option and nothing searched), never the last slot (a candidate's own
    step). A slot whose fixed configuration is invalid ends the prefix (its candidates say why)."""
    steps: list[ResolvedPass] = []
    for slot in slots[:-1]:
        if len(slot.options) != 1 or slot.options[0].size != 1:
            break
        step = slot.options[0].build(slot.name, slot.options[0].values_at(0), accelerator)
        if isinstance(step, str):
            break
        steps.append(step)
    return tuple(steps)


class CandidateExecutor(Protocol):
    """Realises batches of proposals; yields their candidates in proposal order.

    Optional: ``evaluate_input(self, work: InputWork) -> Evaluation``, the search's input model's
    evaluation (see :func:`evaluate_input`); it must give the serial search's result, and its timed
    metrics must not share a CPU with other work. ``batch_width(self, walk: SearchWalk) -> int``: the
    batch size for ``walk`` (see :func:`batch_width`; default :attr:`width`).
    """

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

    def evaluate_input(self, work: InputWork) -> Evaluation:
        return evaluate_in_process(work)

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
        timing: where a Ray task's candidate is timed (a Ray system's ``search_timing``, see
            :mod:`olivine.engine.ray_executor`): ``auto``, in the task when it holds every CPU of its
            node, else alone after the batch's barrier; ``apart``, always alone after the barrier;
            ``in_place``, always in the task, beside the other tasks. The local pool times apart.
    """

    workers: int
    num_cpus: float
    address: str | None = None
    executor: Literal["ray", "local"] = "ray"
    timing: Literal["auto", "apart", "in_place"] = "auto"

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
