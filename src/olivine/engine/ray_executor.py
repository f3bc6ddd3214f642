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
- Up to ``workers`` tasks run at once; the walk proposes further ahead (``_QUEUE_FACTOR`` per slot) and a
  slot that frees takes the next proposal. Candidates come back in proposal order (the loop tells the
  walk in that order), so the same seed gives the same candidates and the same best model as the serial
  search. The chain prefix that a batch's
  candidates share (e.g. conversion + optimization before each quantization) runs once, as its own task,
  before them, on every task slot's CPUs that fit on one node (nothing else of the search runs then).
- The input model is evaluated in a task too (:meth:`RayExecutor.evaluate_input`), on one slot's CPUs of
  its own. Meanwhile, with two slots or more, the steps every candidate shares (the search's fixed
  prefix, :func:`olivine.engine.executor.fixed_prefix`) run as a task on another slot, and the slots left
  warm their task processes up (imports, the search's runner and evaluator): each task holds CPUs of its
  own, so the input model's timed metrics share no CPU with them; when the input model is done first,
  its slot warms up too. With one slot (``workers`` 1, or a cluster with CPUs for one task now), the
  prefix follows the input model's evaluation. Ray reuses the task processes for the candidates, so
  their first candidates do not pay the imports again.

``ray`` is imported only when a spread search starts.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from olivine.engine.candidates import Candidate
from olivine.engine.executor import InputWork, SpreadSettings
from olivine.engine.realise import CandidateWork, check_stop
from olivine.engine.task_work import (
    TaskRecipe,
    TaskResult,
    candidate_task,
    chain_keys,
    chain_task,
    input_task,
    lost_candidate,
    shared_prefix,
    warm_modules,
    warm_task,
)
from olivine.errors import EvaluationError, HostError, MissingDependencyError, OlivineError
from olivine.search.ranking import Objectives
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.chain import ChainRunner
    from olivine.engine.evaluation import CachedEvaluator, Evaluation

logger = logging.getLogger("olivine.engine")

_WAIT_S = 0.5  # how often the engine checks for a cancel while it waits for a task
_QUEUE_FACTOR = 4  # proposals asked for per task slot (see RayExecutor.__init__)
_NOTHING = "the Ray task returned nothing"


def _reachable(address: str) -> None:
    """Fail fast on a GCS address nothing listens on (``ray.init`` would retry for many minutes)."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host.removeprefix("ray://") or "127.0.0.1", int(port)), timeout=10).close()
    except OSError as exc:
        raise HostError(f"search over Ray: the Ray cluster at {address} is not reachable: {exc}") from exc


class RayExecutor:
    """Realises each batch's candidates as Ray tasks (see the module docstring)."""

    def __init__(self, settings: SpreadSettings) -> None:
        self.settings = settings
        self.workers = max(1, settings.workers)
        # The walk is asked for more proposals than run at once, so that a task slot freed early takes
        # the next candidate instead of waiting for the slowest of its group. A stop still wastes at most
        # the tasks in flight: queued proposals are never submitted.
        self.width = self.workers * _QUEUE_FACTOR
        self._ray: Any = None
        self._owns_ray = False
        self._recipe_ref: Any = None
        self._recipe: TaskRecipe | None = None
        self._objectives_known = False  # the recipe carries the search's objectives (after the input)
        self._done: set[str] = set()  # run keys known to be in the cache
        self._early: tuple[Any, list[str]] | None = None  # the fixed prefix's task (ref, run keys)

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
        self._candidate = ray.remote(candidate_task).options(num_cpus=cpus, max_retries=1)
        self._input = ray.remote(input_task).options(num_cpus=cpus, max_retries=0)
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
        another slot and warm the slots left (see the module docstring)."""
        self._prepare_parts(work.runner, work.evaluator, None)
        cpus = self.settings.num_cpus
        prefix = self._uncached(work.prefix, work.runner)
        idle = self._slots() - 1
        evaluating = self._input.remote(self._recipe_ref, work.model_id, work.model, work.reference, cpus)
        modules = warm_modules(work.model)
        warming: list[Any] = []
        if prefix is not None and idle:
            self._start_early(prefix)
            # Slots left warm up while the prefix runs (the candidates wait for it anyway; without a
            # prefix a warm-up would hold a slot the first candidates could use).
            warming = [self._warm.remote(self._recipe_ref, modules, cpus) for _ in range(idle - 1)]
        doing = "evaluating the input model on the Ray cluster"
        if self._early is not None:
            doing += f" (and running {'>'.join(s.name for s in work.prefix)} meanwhile)"
        logger.info(
            "search over Ray: %s, %d task process(es) warming up; each on CPUs of its own",
            doing,
            len(warming),
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
            warming.append(self._warm.remote(self._recipe_ref, modules, cpus))
        del warming  # nothing to wait for: their processes stay in Ray's pool for the candidates
        work.ran_on = result.ran_on
        return result.evaluation

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

    def _finish_early(self, work: CandidateWork) -> None:
        """Wait for the fixed prefix's task, if one was started; re-emit its events. A failed prefix is
        not an error here: each candidate runs it again and fails with its reason."""
        if self._early is None:
            return
        ref, keys = self._early
        self._early = None
        work.phases.set("running the shared prefix on the Ray cluster")
        result = self._result(self._wait_any([ref], work.stop))
        for event in result.events:
            work.phases.emit(event)
        if result.error is None:
            self._done.update(keys)

    # -- realising ------------------------------------------------------------------------------------
    def realise(
        self, batch: Sequence[Proposal], total: int | None, work: CandidateWork
    ) -> Generator[Candidate, None, None]:
        """Up to ``workers`` tasks in flight; a slot that frees takes the batch's next proposal (no
        barrier at the end of a group of ``workers``); candidates are yielded in proposal order."""
        self._prepare(work)
        self._finish_early(work)
        self._shared_prefix(batch, work)
        queue = deque(enumerate(batch))
        inflight: dict[Any, int] = {}  # task ref -> index in the batch
        finished: dict[int, TaskResult] = {}
        # A stop (the caller closes this generator) submits nothing more. Tasks already running are left
        # to finish (their runs land in the cache), not cancelled: ray.cancel racing a task's completion
        # crashed the driver (Ray 2.60: "Tried to complete task that was not pending"). Ray ends them with
        # the driver when the workflow is cancelled.
        for index, proposal in enumerate(batch):
            while index not in finished:
                if len(inflight) < self.workers and queue:
                    while len(inflight) < self.workers and queue:
                        at, queued = queue.popleft()
                        inflight[
                            self._candidate.remote(self._recipe_ref, queued, total, self.settings.num_cpus)
                        ] = at
                    numbers = ", ".join(str(batch[i].number) for i in sorted(inflight.values()))
                    work.phases.set(f"candidates {numbers} running on the Ray cluster")
                ref = self._wait_any(list(inflight), work.stop)
                finished[inflight.pop(ref)] = self._result(ref)
            result = finished.pop(index)
            for event in result.events:
                work.phases.emit(event)
            candidate = (
                result.candidate
                if result.candidate is not None
                else lost_candidate(proposal, result, _NOTHING)
            )
            self._done.update(run.key for run in candidate.runs)
            yield candidate

    def _shared_prefix(self, batch: Sequence[Proposal], work: CandidateWork) -> None:
        """Run once, first, the chain prefix that two or more of ``batch``'s candidates share and that is
        not in the cache yet (the candidates would each run it at the same time otherwise)."""
        prefix = shared_prefix(batch, work.runner, self._done)
        if prefix is None:
            return
        steps, keys = prefix
        work.phases.set(f"running the shared prefix {'>'.join(s.name for s in steps)} on the Ray cluster")
        result = self._get(self._chain.remote(self._recipe_ref, steps, self._prefix_cpus), work)
        for event in result.events:
            work.phases.emit(event)
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
