"""A search spread over a Ray cluster: each candidate (its pass runs and its evaluation) is one Ray task.

- The tasks are :mod:`olivine.engine.task_work`'s functions as Ray remote functions. Each reserves
  ``num_cpus`` in Ray (so Ray runs no more tasks on a node than it has CPUs) and, inside the task, claims
  ``ceil(num_cpus)`` CPUs of its own and pins every thread of its worker process to them
  (:mod:`olivine.engine.affinity`): a Ray reservation is only a count, and onnxruntime sessions with
  default threads would otherwise spread over every core, so a timed latency run would share CPUs with
  the other tasks' pass runs and evaluations.
- Results land in the one cache, the job's ``cache_dir``: tasks open it by path, so every node must see
  it at the same path. On one machine it is; on several nodes it must be a shared filesystem (NFS, EFS,
  Azure Files, a KubeRay volume) mounted at the same path everywhere. A task checks that it sees the
  folder the engine marked and fails with a clear error otherwise (no silent node-local cache).
  Concurrent writers are safe: runs are committed by an atomic rename (:mod:`olivine.engine.cache`).
- Where a candidate's timed metrics (latency, throughput) run is the system's ``search_timing``
  (:attr:`SpreadSettings.timing`):

  - ``auto`` (the default): **in place** when the task holds every CPU of its Ray node (the node's CPU
    total is the task's reservation: e.g. one-CPU worker nodes, or one KubeRay pod per task), since no
    other task, of this search or of any job, can run on that node meanwhile; the task then realises
    the candidate whole, as the serial search does. A task on a node that can run other tasks beside it
    times **apart**, below. Which nodes qualify is read from Ray's node table at each batch.
  - ``apart``: every candidate is timed apart, in two phases, as the local pool does
    (:mod:`olivine.engine.pool_executor`):

    1. **Untimed, spread.** Up to ``workers`` tasks run at once, each a candidate's pass chain and its
       untimed metrics (accuracy, custom, size); a slot that frees takes the batch's next proposal. A
       barrier: every task of the batch has ended (and every warm-up task).
    2. **Timed, alone.** In proposal order, one task per candidate realises it again, as the serial
       search does: chain and untimed metrics from the cache, then the timed metrics, on
       ``ceil(num_cpus)`` pinned CPUs with no other task of the search running anywhere on the cluster.
       (Timed next to each other, pinned to CPUs of their own, candidates' latencies were up to 26%
       slower on a 2-vCPU VM: the CPUs share the cache and memory bandwidth.) A candidate that fails a
       goal on its untimed metrics is not timed (pruned, as in the serial search): the engine records
       it from the cache. These tasks go wherever Ray places them; on a cluster of unlike nodes, the
       candidates' timed runs may land on different kinds of node.

  - ``in_place``: every task times its own candidate, on its claimed CPUs, beside the other tasks (no
    barrier; fastest, and latencies may be skewed by neighbours sharing the caches and memory).

  On a cluster with both kinds of node, candidates timed in place are final when their task ends; the
  first candidate of a batch left to time apart waits for the batch's barrier. Candidates come back in
  proposal order (the loop tells the walk in that order), so the same seed gives the same candidates
  and the same best model as the serial search. A walk that cannot stop early (joint, no
  ``stop_when_goals_met`` or ``max_time``, at most 64 candidates) is one batch (one barrier), as in the
  local pool. Each candidate's ``ran_on`` says where its task ran and ``timed_in_place`` whether it
  timed the candidate; under ``timed``, where its timing task ran. The chain prefix that a batch's
  candidates share (e.g. conversion + optimization before each quantization) runs once, as its own
  task, before them, on every task slot's CPUs that fit on one node (nothing else of the search runs
  then).
- The input model is evaluated in a task too (:meth:`RayExecutor.evaluate_input`), on one slot's CPUs of
  its own. Meanwhile, with two slots or more, the steps every candidate shares (the search's fixed
  prefix, :func:`olivine.engine.executor.fixed_prefix`) run as a task on another slot, and the slots left
  warm their task processes up (imports, the search's runner and evaluator); when the input model's
  untimed metrics are done first, its slot warms up too. Its timed metrics then run in a task of their
  own once the prefix and the warm-ups have ended (alone, as a candidate's), unless its task holds a node
  of its own (``auto``: then it is timed in that task). With one slot (``workers``
  1, or a cluster with CPUs for one task now), the input model is evaluated whole, then the prefix
  runs. Ray reuses the task processes for the candidates, so their first candidates do not pay the
  imports again.

``ray`` is imported only when a spread search starts.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections import deque
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.engine.candidates import Candidate
from olivine.engine.events import EngineEvent, PassStarted
from olivine.engine.executor import InputWork, SpreadSettings
from olivine.engine.realise import CandidateWork, check_stop
from olivine.engine.task_work import (
    TaskRecipe,
    TaskResult,
    candidate_task,
    chain_keys,
    chain_task,
    event_paths,
    input_task,
    lost_candidate,
    shared_prefix,
    warm_modules,
    warm_task,
)
from olivine.errors import EvaluationError, HostError, MissingDependencyError, OlivineError
from olivine.search.ranking import Objectives
from olivine.search.strategy import Proposal, SearchWalk

if TYPE_CHECKING:
    from olivine.engine.chain import ChainRunner
    from olivine.engine.evaluation import CachedEvaluator, Evaluation
    from olivine.engine.phase import Phases
    from olivine.model.handle import ModelHandle

logger = logging.getLogger("olivine.engine")

_WAIT_S = 0.5  # how often the engine checks for a cancel while it waits for a task
_QUEUE_FACTOR = 8  # proposals asked for per task slot (see RayExecutor.__init__)
_WHOLE_WALK_MAX = 64  # a walk of at most this many candidates that cannot stop early: one batch
_NOTHING = "the Ray task returned nothing"


def _has_timed(evaluator: CachedEvaluator | None) -> bool:
    """Whether ``evaluator`` has timed metrics (latency, throughput)."""
    return evaluator is not None and any(part == "timed" for part, _ in evaluator.parts)


def _reachable(address: str) -> None:
    """Fail fast on a GCS address nothing listens on (``ray.init`` would retry for many minutes)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host.removeprefix("ray://") or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as exc:
        raise HostError(f"search over Ray: the Ray cluster at {address} is not reachable: {exc}") from exc


def _times_here(timed_on: frozenset[str] | None) -> bool:
    """Whether a task on this Ray node runs its timed metrics itself: on every node (``timed_on`` None),
    else when this node is one of ``timed_on``."""
    if timed_on is None:
        return True
    import ray

    return str(ray.get_runtime_context().get_node_id()) in timed_on


def candidate_on_node(
    recipe: TaskRecipe,
    proposal: Proposal,
    total: int | None,
    cpus: float,
    timed_on: frozenset[str] | None,
) -> TaskResult:
    """:func:`~olivine.engine.task_work.candidate_task` as a Ray task: the candidate whole (its timed
    metrics too) on one of the nodes ``timed_on`` (None: any node), else its chain and untimed metrics
    only. Its ``ran_on`` says which (``timed_in_place``)."""
    here = _times_here(timed_on)
    result = candidate_task(recipe, proposal, total, cpus, untimed_only=not here)
    if result.candidate is not None and result.candidate.ran_on is not None:
        result.candidate.ran_on["timed_in_place"] = here
    return result


def input_on_node(
    recipe: TaskRecipe,
    model_id: str,
    model: ModelHandle,
    reference: bool,
    cpus: float,
    timed_on: frozenset[str] | None,
) -> TaskResult:
    """:func:`~olivine.engine.task_work.input_task` as a Ray task, timed in it as
    :func:`candidate_on_node` decides; ``ran_on`` says which (``timed_in_place``)."""
    here = _times_here(timed_on)
    result = input_task(recipe, model_id, model, reference, cpus, untimed_only=not here)
    if result.ran_on is not None:
        result.ran_on["timed_in_place"] = here
    return result


def _cannot_stop_early(walk: SearchWalk) -> int | None:
    """The walk's number of candidates when it is joint, cannot stop early (``stop_when_goals_met``,
    ``max_time``) and has at most :data:`_WHOLE_WALK_MAX` of them; else None."""
    strategy, total = walk.strategy, walk.total
    if (
        strategy is None
        or strategy.execution_order != "joint"
        or strategy.stop_when_goals_met
        or strategy.max_time
        or total is None
        or total > _WHOLE_WALK_MAX
    ):
        return None
    return total


class RayExecutor:
    """Realises each batch's candidates as Ray tasks (see the module docstring)."""

    def __init__(self, settings: SpreadSettings) -> None:
        self.settings = settings
        self.workers = max(1, settings.workers)
        self.timing = settings.timing
        # The walk is asked for more proposals than run at once, so that a task slot freed early takes
        # the next candidate instead of waiting for the slowest of its group, and each batch ends in one
        # barrier and timed phase (the fewer, the less a slot idles at the end of phase 1). A stop
        # (stop_when_goals_met, max_time) may have done the untimed work of up to a batch of proposals
        # the serial search would not have run; their results are dropped.
        self.width = self.workers * _QUEUE_FACTOR
        self._ray: Any = None
        self._owns_ray = False
        self._recipe_ref: Any = None
        self._recipe: TaskRecipe | None = None
        self._objectives_known = False  # the recipe carries the search's objectives (after the input)
        self._done: set[str] = set()  # run keys known to be in the cache
        self._early: tuple[Any, list[str]] | None = None  # the fixed prefix's task (ref, run keys)
        self._warming: list[Any] = []  # warm-up tasks that may still run
        self._announced: set[Path] = set()  # cache paths named by events already re-emitted

    def batch_width(self, walk: SearchWalk) -> int:
        """How many proposals to ask ``walk`` for at once: all of them when the walk is joint, cannot stop
        early and has at most :data:`_WHOLE_WALK_MAX` candidates (a stop would drop the work done ahead),
        as the local pool does; else :attr:`width`. Every batch boundary costs a barrier and the idle tail
        of a batch (a task slot with nothing left while the others finish)."""
        total = _cannot_stop_early(walk)
        return self.width if total is None else max(self.width, total)

    # -- connecting -----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError(
                "a search spread over Ray needs Ray: pip install 'olivine[ray]'"
            ) from exc
        if not ray.is_initialized():
            address = self.settings.address or "auto"
            _reachable(address)
            # ray.init replaces the process's SIGTERM handler with sys.exit: a job's worker would then die
            # as "user code called sys.exit" instead of stopping after the running step. Keep ours.
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(
                    address=address,
                    namespace="olivine",
                    log_to_driver=False,
                    configure_logging=False,
                    include_dashboard=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise HostError(
                    f"search over Ray: cannot connect to the Ray cluster at {address}: {exc}"
                ) from exc
            finally:
                if main and sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._owns_ray = True
        self._ray = ray
        return ray

    def _prepare(self, work: CandidateWork) -> None:
        self._prepare_parts(work.runner, work.evaluator, work.objectives)

    def _prepare_parts(
        self, runner: ChainRunner, evaluator: CachedEvaluator | None, objectives: Objectives | None
    ) -> None:
        """Connect and ship the search's recipe (once; again when its ``objectives`` become known)."""
        if self._recipe is not None:
            if objectives is not None and not self._objectives_known:
                self._recipe = replace(self._recipe, objectives=objectives)
                self._recipe_ref = self._ray.put(self._recipe)
                self._objectives_known = True
            return
        ray = self._connect()
        self._recipe = TaskRecipe.of_parts(runner, evaluator, objectives or Objectives())
        self._objectives_known = objectives is not None
        self._recipe_ref = ray.put(self._recipe)
        cpus = self.settings.num_cpus
        self._candidate = ray.remote(candidate_on_node).options(num_cpus=cpus, max_retries=1)
        self._input = ray.remote(input_on_node).options(num_cpus=cpus, max_retries=0)
        self._warm = ray.remote(warm_task).options(num_cpus=cpus, max_retries=0)
        self._early_chain = ray.remote(chain_task).options(num_cpus=cpus, max_retries=1)
        # Nothing else of this search runs while a shared prefix does: it may take every task slot's
        # CPUs that fit on one node (conversion and optimization run torch and onnxruntime threads).
        self._prefix_cpus = min(self.workers * self.settings.num_cpus, self._largest_node_cpus(ray))
        self._prefix_cpus = max(self._prefix_cpus, self.settings.num_cpus)
        self._chain = ray.remote(chain_task).options(num_cpus=self._prefix_cpus, max_retries=1)
        logger.info(
            "search over Ray: up to %d candidate(s) at once, %s CPU(s) each",
            self.workers,
            self.settings.num_cpus,
        )

    def _slots(self) -> int:
        """How many tasks of one slot's CPUs run at once: ``workers``, or fewer when the cluster has
        fewer CPUs now (then the input model's evaluation and the prefix run one after the other, and
        nothing warms up)."""
        try:
            total = float(self._ray.cluster_resources().get("CPU", 0))
        except Exception:  # an older or newer Ray's resource table: trust the settings
            return self.workers
        if total <= 0:
            return self.workers
        return max(1, min(self.workers, int(total // self.settings.num_cpus)))

    def _timed_on(self, evaluator: CachedEvaluator | None) -> frozenset[str] | None:
        """The Ray nodes where a task runs its candidate's timed metrics itself (None: every node): under
        ``auto``, the alive nodes whose CPUs are all one task's reservation (nothing else of the search,
        nor of any other job, can run on such a node meanwhile); every node under ``in_place`` or when
        nothing is timed; none under ``apart``. Asked again for each batch: a node that joins later
        counts from the next batch on."""
        if self.timing == "in_place" or not _has_timed(evaluator):
            return None
        if self.timing == "apart":
            return frozenset()
        cpus = self.settings.num_cpus
        try:
            return frozenset(
                str(node["NodeID"])
                for node in self._ray.nodes()
                if node.get("Alive") and abs(float(node.get("Resources", {}).get("CPU", 0)) - cpus) < 1e-9
            )
        except Exception:  # an older or newer Ray's node table: time apart
            return frozenset()

    @staticmethod
    def _largest_node_cpus(ray: Any) -> float:
        try:
            return max(
                (float(node.get("Resources", {}).get("CPU", 0)) for node in ray.nodes() if node.get("Alive")),
                default=0.0,
            )
        except Exception:  # an older or newer Ray's node table: fall back to one slot's CPUs
            return 0.0

    # -- the input model -----------------------------------------------------------------------------
    def evaluate_input(self, work: InputWork) -> Evaluation:
        """Evaluate the input model in a task on one slot's CPUs; meanwhile run the fixed prefix on
        another slot and warm the slots left; its timed metrics then run alone (see the module
        docstring)."""
        self._prepare_parts(work.runner, work.evaluator, None)
        cpus = self.settings.num_cpus
        prefix = self._uncached(work.prefix, work.runner)
        idle = self._slots() - 1
        # With the prefix running beside it (two slots or more), its timed metrics wait for the prefix,
        # unless its task holds a node of its own (see _timed_on).
        beside = prefix is not None and idle > 0 and _has_timed(work.evaluator)
        timed_on = self._timed_on(work.evaluator) if beside else None
        evaluating = self._input.remote(
            self._recipe_ref, work.model_id, work.model, work.reference, cpus, timed_on
        )
        modules = warm_modules(work.model)
        if prefix is not None and idle:
            self._start_early(prefix)
            # Slots left warm up while the prefix runs (the candidates wait for it anyway; without a
            # prefix a warm-up would hold a slot the first candidates could use).
            self._warming = [self._warm.remote(self._recipe_ref, modules, cpus) for _ in range(idle - 1)]
        doing = "evaluating the input model on the Ray cluster"
        if self._early is not None:
            doing += f" (and running {'>'.join(s.name for s in work.prefix)} meanwhile)"
        logger.info(
            "search over Ray: %s, %d task process(es) warming up; each on CPUs of its own",
            doing,
            len(self._warming),
        )
        work.phases.set(doing)
        result = self._result(self._wait_any([evaluating], work.stop))
        if result.evaluation is None:
            raise EvaluationError(f"evaluating the input model: {result.error or _NOTHING}")
        if prefix is not None and self._early is None:
            self._start_early(prefix)  # one slot: after the input model's evaluation
        elif self._early is not None and not self._ray.wait([self._early[0]], timeout=0)[0]:
            # The input model's slot is free while the prefix runs: its process loads what the
            # candidates use (the candidates cannot start before the prefix ends).
            self._warming.append(self._warm.remote(self._recipe_ref, modules, cpus))
        work.ran_on = result.ran_on
        if not beside or (result.ran_on or {}).get("timed_in_place"):
            return result.evaluation
        # Its timed metrics, alone: after the prefix and the warm-ups, its untimed metrics from the cache.
        self._finish_early(work.phases, work.stop)
        self._settle_warming(work.phases, work.stop)
        work.phases.set("timing the input model on the Ray cluster, nothing else running")
        timing = self._input.remote(self._recipe_ref, work.model_id, work.model, work.reference, cpus, None)
        timed = self._result(self._wait_any([timing], work.stop))
        if timed.evaluation is None:
            raise EvaluationError(f"evaluating the input model: {timed.error or _NOTHING}")
        timed_where = dict(timed.ran_on or {})
        timed_where.pop("timed_in_place", None)
        work.ran_on = {**(result.ran_on or {}), "timed": timed_where}
        return timed.evaluation

    def _uncached(
        self, steps: tuple[Any, ...], runner: ChainRunner
    ) -> tuple[tuple[Any, ...], list[str]] | None:
        """``steps`` and their run keys, or None when there are none or they are all in the cache."""
        if not steps:
            return None
        keys = chain_keys(steps, runner)
        if all(runner.cache.load_run(key) is not None for key in keys):
            self._done.update(keys)
            return None
        return steps, keys

    def _start_early(self, prefix: tuple[tuple[Any, ...], list[str]]) -> None:
        steps, keys = prefix
        ref = self._early_chain.remote(self._recipe_ref, steps, self.settings.num_cpus)
        self._early = (ref, keys)

    def _finish_early(self, phases: Phases, stop: threading.Event | None) -> None:
        """Wait for the fixed prefix's task, if one was started; re-emit its events. A failed prefix is
        not an error here: each candidate runs it again and fails with its reason."""
        if self._early is None:
            return
        ref, keys = self._early
        self._early = None
        phases.set("running the shared prefix on the Ray cluster")
        result = self._result(self._wait_any([ref], stop))
        self._emit(result.events, phases)
        if result.error is None:
            self._done.update(keys)

    # -- realising ------------------------------------------------------------------------------------
    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """The batch's candidates in proposal order (see the module docstring): up to ``workers`` tasks in
        flight, a slot that frees takes the batch's next proposal. A candidate timed in its task (or a
        search without timed metrics) is yielded as soon as it and those before it are done; the first
        one left to time apart waits for the batch's barrier, then is timed alone, as are the others
        after it."""
        self._prepare(work)
        self._finish_early(work.phases, work.stop)
        self._shared_prefix(batch, work)
        timed = _has_timed(work.evaluator)
        timed_on = self._timed_on(work.evaluator)
        queue = deque((i, p) for i, p in enumerate(batch) if p.steps is not None)
        inflight: dict[Any, int] = {}  # task ref -> index in the batch
        finished: dict[int, TaskResult] = {}
        barrier = False  # every task of the batch has ended (before the first candidate timed apart)
        # A stop (the caller closes this generator) submits nothing more. Tasks already running are left
        # to finish (their runs land in the cache), not cancelled: ray.cancel racing a task's completion
        # crashed the driver (Ray 2.60: "Tried to complete task that was not pending"). Ray ends them with
        # the driver when the workflow is cancelled.
        for index, proposal in enumerate(batch):
            if proposal.steps is None:  # invalid: nothing runs in a task; the serial code records it
                yield work.realise(proposal, total)
                continue
            while index not in finished:
                self._submit(queue, inflight, batch, total, work, timed_on)
                ref = self._wait_any(list(inflight), work.stop)
                finished[inflight.pop(ref)] = self._result(ref)
            result = finished.pop(index)
            self._emit(result.events, work.phases)
            first = (
                result.candidate
                if result.candidate is not None
                else lost_candidate(proposal, result, _NOTHING)
            )
            self._done.update(run.key for run in first.runs)
            in_place = bool((first.ran_on or {}).get("timed_in_place"))
            if not timed and first.ran_on is not None:
                first.ran_on.pop("timed_in_place", None)  # nothing to time: no place to say
            if not timed or in_place or first.status in ("failed", "invalid"):
                yield first  # final: timed in its task, or nothing to time (the serial search records it)
                continue
            if not work.time_it(first.metrics or {}):
                # Pruned on its untimed metrics, as in the serial search: the engine records it from the
                # cache (chain and untimed metrics; nothing runs).
                with self._deduplicated(work.phases):
                    pruned = work.realise(proposal, total)
                pruned.ran_on = first.ran_on
                yield pruned
                continue
            if not barrier:  # nothing else of the search runs while a candidate is timed apart
                while queue or inflight:
                    self._submit(queue, inflight, batch, total, work, timed_on)
                    ref = self._wait_any(list(inflight), work.stop)
                    finished[inflight.pop(ref)] = self._result(ref)
                self._settle_warming(work.phases, work.stop)
                barrier = True
            yield self._timed(proposal, total, first, work)

    def _submit(
        self,
        queue: deque[tuple[int, Proposal]],
        inflight: dict[Any, int],
        batch: Sequence[Proposal],
        total: int | None,
        work: CandidateWork,
        timed_on: frozenset[str] | None,
    ) -> None:
        """Submit queued proposals until ``workers`` tasks are in flight."""
        if not queue:
            return
        while len(inflight) < self.workers and queue:
            at, queued = queue.popleft()
            ref = self._candidate.remote(self._recipe_ref, queued, total, self.settings.num_cpus, timed_on)
            inflight[ref] = at
        numbers = ", ".join(str(batch[i].number) for i in sorted(inflight.values()))
        what = "passes and untimed metrics" if timed_on == frozenset() else "running"
        work.phases.set(f"candidates {numbers}: {what} on the Ray cluster")

    def _timed(
        self, proposal: Proposal, total: int | None, first: Candidate, work: CandidateWork
    ) -> Candidate:
        """Phase 2: one task realises the candidate again, as the serial search does (its chain and untimed
        metrics from the cache) and runs its timed metrics, with no other task of the search running."""
        work.phases.set(
            f"candidate {proposal.number}: timed metrics on the Ray cluster, nothing else running"
        )
        ref = self._candidate.remote(self._recipe_ref, proposal, total, self.settings.num_cpus, None)
        result = self._result(self._wait_any([ref], work.stop))
        self._emit(result.events, work.phases, starts=False)
        if result.candidate is None:
            return lost_candidate(proposal, result, _NOTHING)
        candidate = result.candidate
        self._done.update(run.key for run in candidate.runs)
        timing = dict(candidate.ran_on or {})
        timing.pop("timed_in_place", None)
        if candidate.timed_span is not None:  # the timed metrics' own seconds, within the task's
            timing["metrics_s"] = round(candidate.timed_span[1] - candidate.timed_span[0], 3)
        candidate.ran_on = {**(first.ran_on or {}), "timed": timing}
        return candidate

    def _settle_warming(self, phases: Phases, stop: threading.Event | None) -> None:
        """Wait for the warm-up tasks still running (none of the search's tasks runs while one is timed)."""
        if not self._warming:
            return
        _, self._warming = self._ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
        if self._warming:
            phases.set("waiting for the Ray task processes to finish warming up before timing")
        while self._warming:
            check_stop(stop)
            _, self._warming = self._ray.wait(self._warming, num_returns=len(self._warming), timeout=_WAIT_S)

    def _emit(self, events: Sequence[EngineEvent], phases: Phases, starts: bool = True) -> None:
        """Re-emit a task's events, each cache path once (a host exports what an event names), and pass
        starts only when ``starts``."""
        for event in events:
            if not starts and isinstance(event, PassStarted):
                continue
            if self._announce(event):
                phases.emit(event)

    @contextmanager
    def _deduplicated(self, phases: Phases) -> Generator[None, None, None]:
        """Meanwhile (the engine realising a candidate from the cache), events about a cache path already
        announced are not announced again, nor pass starts."""
        listener = phases.listener

        def announce(event: EngineEvent) -> None:
            if not isinstance(event, PassStarted) and self._announce(event) and listener is not None:
                listener(event)

        phases.listener = announce
        try:
            yield
        finally:
            phases.listener = listener

    def _announce(self, event: EngineEvent) -> bool:
        """Whether ``event`` is news (it names no cache path announced before); noted."""
        paths = event_paths(event)
        if paths and paths <= self._announced:
            return False
        self._announced.update(paths)
        return True

    def _shared_prefix(self, batch: Sequence[Proposal], work: CandidateWork) -> None:
        """Run once, first, the chain prefix that two or more of ``batch``'s candidates share and that is
        not in the cache yet (the candidates would each run it at the same time otherwise)."""
        prefix = shared_prefix(batch, work.runner, self._done)
        if prefix is None:
            return
        steps, keys = prefix
        work.phases.set(f"running the shared prefix {'>'.join(s.name for s in steps)} on the Ray cluster")
        result = self._get(self._chain.remote(self._recipe_ref, steps, self._prefix_cpus), work)
        self._emit(result.events, work.phases)
        if result.error is None:
            self._done.update(keys)

    def _get(self, ref: Any, work: CandidateWork) -> TaskResult:
        return self._result(self._wait_any([ref], work.stop))

    def _wait_any(self, refs: list[Any], stop: threading.Event | None) -> Any:
        """The first of ``refs`` whose task ended (checking for a cancel meanwhile)."""
        while True:
            check_stop(stop)
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=_WAIT_S)
            if ready:
                return ready[0]

    def _result(self, ref: Any) -> TaskResult:
        ray = self._ray
        try:
            result: TaskResult = ray.get(ref)
            return result
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, OlivineError):
                raise cause from None  # as the serial search would: e.g. the cache is not shared
            return TaskResult(
                None, error=f"the Ray task failed: {type(cause or exc).__name__}: {cause or exc}"
            )
        except ray.exceptions.RayError as exc:  # the worker or its node died, the task was cancelled
            return TaskResult(None, error=f"the Ray task ended: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._recipe is not None:
            self._recipe.discard()
            self._recipe = None
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._owns_ray = None, False
