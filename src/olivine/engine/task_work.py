"""The task side of a spread search, engine-neutral (no Ray import): what a task process needs to rebuild
the engine's runner and evaluator (:class:`TaskRecipe`), the task functions, and what they send back
(:class:`TaskResult`).

:class:`olivine.engine.ray_executor.RayExecutor` wraps :func:`candidate_task` and :func:`chain_task` as
Ray remote functions; a local pool executor calls them in worker processes. Each task claims
``ceil(cpus)`` CPUs of its own with :func:`olivine.engine.affinity.exclusive_cpus` around its work (pass
runs, evaluation, timed runs), so a timed latency run never shares a CPU with another task's work, and
records the pinned CPU ids in its result. Thread pools created inside the task inherit the pinning, with
two libraries steered further while the task runs:

- onnxruntime: a session left at the default thread count (``intra_op_num_threads`` 0, e.g. a user
  script's fidelity session or a pass's own session) sizes its pool to the machine's cores and pins each
  pool thread to a core of its choosing, outside the claim (seen: a task pinned to CPU 0 had a pool
  thread on CPU 1). In a task, such sessions get the claimed count instead (onnxruntime then pins
  nothing); sessions with an explicit count (timed metrics must have one) are left as they are.
- torch and OpenMP: ``torch.set_num_threads`` and ``OMP_NUM_THREADS`` are the claimed count.

A watcher samples the process's threads while the task runs; a thread allowed outside the claim (a
library that pins its own threads) is pinned back and counted: a candidate's ``ran_on`` record in the
footprint shows the CPUs and that count.

Results land in the one cache, the job's ``cache_dir``: tasks open it by path, so every process (and
every node) must see it at the same path. A task checks that it sees the folder the engine marked and
fails with a clear error otherwise (no silent node-local cache).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.engine import affinity
from olivine.engine.cache import WorkflowCache
from olivine.engine.candidates import Candidate, candidate_id
from olivine.engine.chain import ChainRunner
from olivine.engine.events import EngineEvent, EvaluationFinished, PassFailed, PassFinished, PhaseChanged
from olivine.engine.phase import Phases
from olivine.engine.realise import CandidateWork
from olivine.errors import CacheError
from olivine.search.space import ResolvedPass
from olivine.search.strategy import Proposal

if TYPE_CHECKING:
    from olivine.engine.evaluation import CachedEvaluator, Evaluation
    from olivine.engine.resolve import ResolvedWorkflow
    from olivine.model.accelerator import Accelerator
    from olivine.model.handle import ModelHandle
    from olivine.search.ranking import Objectives

MARKER_PREFIX = ".olivine-spread-"  # the engine's marker in the cache folder (see TaskRecipe.marker)


@dataclass(frozen=True)
class TaskRecipe:
    """What a task needs to rebuild the engine's runner and evaluator (shipped once per search)."""

    token: str
    workflow_id: str
    cache_root: Path  # the cache_dir: WorkflowCache adds the workflow id
    marker: Path  # a file the engine wrote in the cache folder: a task that cannot see it fails
    accelerator: Accelerator
    input_model: ModelHandle
    input_model_id: str
    data_configs: dict[str, Any]
    base_dir: Path | None
    objectives: Objectives
    workflow: ResolvedWorkflow | None  # for the evaluator (None: no evaluator)
    tokenizer_path: str | None = None
    eval_input_model: ModelHandle | None = None

    @classmethod
    def of(cls, work: CandidateWork) -> TaskRecipe:
        """The recipe of the engine's ``work``; writes its marker in the cache folder (remove it with
        :meth:`discard` when the search ends)."""
        return cls.of_parts(work.runner, work.evaluator, work.objectives)

    @classmethod
    def of_parts(
        cls, runner: ChainRunner, evaluator: CachedEvaluator | None, objectives: Objectives
    ) -> TaskRecipe:
        """The recipe of a search's ``runner`` and ``evaluator`` (before its objectives are known, e.g.
        for the input model's evaluation: ``Objectives()``, replaced later with
        ``dataclasses.replace``; a task process keeps one work per token and takes the new
        objectives). Writes the marker (see :meth:`of`)."""
        token = uuid.uuid4().hex
        marker = runner.cache.root / f"{MARKER_PREFIX}{token}"
        marker.write_text("the engine of a spread search; its tasks check that they see this file\n")
        return cls(
            token=token,
            workflow_id=runner.workflow_id,
            cache_root=runner.cache.root.parent,
            marker=marker,
            accelerator=runner.accelerator,
            input_model=runner.input_model,
            input_model_id=runner.input_model_id,
            data_configs=runner.data_configs,
            base_dir=runner.base_dir,
            objectives=objectives,
            workflow=evaluator.workflow if evaluator is not None else None,
            tokenizer_path=evaluator.tokenizer_path if evaluator is not None else None,
            eval_input_model=evaluator.input_model if evaluator is not None else None,
        )

    def discard(self) -> None:
        """Remove the marker (the search ended)."""
        self.marker.unlink(missing_ok=True)


@dataclass
class TaskResult:
    """What a task sends back: its candidate (None for a prefix task), the events to re-emit in proposal
    order, a prefix task's error, the node it ran on and the CPUs it was pinned to (() where CPUs cannot
    be pinned)."""

    candidate: Candidate | None
    events: list[EngineEvent] = field(default_factory=list)
    error: str | None = None
    node: str = ""
    cpus: tuple[int, ...] = ()
    evaluation: Evaluation | None = None  # an input task's evaluation
    ran_on: dict[str, Any] | None = None  # an input or prefix task's place and start/end (as a candidate's)


_WORK: dict[str, CandidateWork] = {}  # per task process: the work of the search it serves


def work_of(recipe: TaskRecipe) -> CandidateWork:
    """The runner and evaluator of ``recipe``'s search, built once per task process."""
    work = _WORK.get(recipe.token)
    if work is not None:
        work.objectives = recipe.objectives  # known only after the input model's evaluation
        return work
    if not recipe.marker.is_file():
        raise CacheError(
            f"spread search: the cache folder {recipe.marker.parent} is not visible on node "
            f"{socket.gethostname()}: every node must mount it at the same path (a shared filesystem)"
        )
    cache = WorkflowCache(recipe.cache_root, recipe.workflow_id)
    phases = Phases(recipe.workflow_id, None)
    runner = ChainRunner(
        recipe.workflow_id,
        cache,
        recipe.accelerator,
        phases,
        recipe.input_model,
        recipe.input_model_id,
        data_configs=recipe.data_configs,
        base_dir=recipe.base_dir,
    )
    evaluator = None
    if recipe.workflow is not None:
        from olivine.engine.evaluation import CachedEvaluator

        evaluator = CachedEvaluator(recipe.workflow, cache, recipe.tokenizer_path, recipe.eval_input_model)
    work = CandidateWork(recipe.workflow_id, runner, evaluator, recipe.objectives, phases, None, True)
    _WORK.clear()  # a task process serves one search at a time
    _WORK[recipe.token] = work
    return work


def _listening(work: CandidateWork) -> list[EngineEvent]:
    """Collect the task's events (the engine re-emits them, in proposal order); phases stay local."""
    events: list[EngineEvent] = []

    def keep(event: EngineEvent) -> None:
        if not isinstance(event, PhaseChanged):
            events.append(event)

    phases = Phases(work.workflow_id, keep)
    work.phases = work.runner.phases = phases
    return events


def cpu_count(cpus: float) -> int:
    """The whole CPUs a task reserving ``cpus`` claims (at least one)."""
    return max(1, math.ceil(cpus))


_WATCH_S = 0.05  # how often the watcher looks for threads allowed outside the claimed CPUs


class _Watcher:
    """Samples this process's threads while a task runs: a thread allowed outside ``cpus`` is pinned
    back; ``outside`` keeps the ids of every such thread."""

    def __init__(self, cpus: tuple[int, ...]) -> None:
        self.cpus = cpus
        self.outside: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="olivine-cpu-watch", daemon=True)

    def _check(self) -> None:
        escaped = affinity.escaped_threads(self.cpus)
        for tid in escaped:
            with suppress(OSError):
                os.sched_setaffinity(tid, self.cpus)
        self.outside.update(escaped)

    def _watch(self) -> None:
        while True:
            self._check()
            if self._stop.wait(_WATCH_S):
                return

    def __enter__(self) -> _Watcher:
        if self.cpus:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cpus:
            self._stop.set()
            self._thread.join()
            self._check()


@contextmanager
def _thread_counts(count: int) -> Iterator[None]:
    """torch (already imported, or imported by the task) and OpenMP size their pools to ``count``."""
    old_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch: Any = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old_env
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(old_torch or count)


@contextmanager
def _onnxruntime_threads(count: int) -> Iterator[None]:
    """onnxruntime sessions created meanwhile that leave their thread counts at the default get
    ``count`` (see the module docstring); the class is restored afterwards."""
    try:
        import onnxruntime as ort
    except ImportError:
        yield
        return
    session = ort.InferenceSession
    original = session.__init__

    def init(self: Any, path_or_bytes: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> None:
        if sess_options is None:
            sess_options = ort.SessionOptions()
        if sess_options.intra_op_num_threads <= 0:
            sess_options.intra_op_num_threads = count
        if sess_options.inter_op_num_threads <= 0:
            sess_options.inter_op_num_threads = count
        original(self, path_or_bytes, sess_options, *args, **kwargs)

    session.__init__ = init
    try:
        yield
    finally:
        session.__init__ = original


@contextmanager
def _own_cpus(cpus: float) -> Iterator[_Watcher]:
    """Claim ``ceil(cpus)`` CPUs, steer thread pools to them and watch for threads that leave."""
    count = cpu_count(cpus)
    with (
        affinity.exclusive_cpus(count) as pinned,
        _thread_counts(count),
        _onnxruntime_threads(count),
        _Watcher(pinned) as watcher,
    ):
        yield watcher


def candidate_task(
    recipe: TaskRecipe,
    proposal: Proposal,
    total: int | None,
    cpus: float,
    *,
    untimed_only: bool | None = None,
) -> TaskResult:
    """Realise and evaluate one candidate on ``ceil(cpus)`` CPUs of its own; the candidate's
    ``ran_on`` says where (node, CPUs, threads seen outside them, whether it was evaluated here).
    ``untimed_only``: True, its chain and untimed metrics only; False, everything (what is in the cache
    is taken from it: a second task that times a candidate whose untimed part ran earlier); None, as
    the process's work is set (the local pool's workers set it once)."""
    started, cpu_started = time.time(), time.process_time()
    with _own_cpus(cpus) as watcher:
        work = work_of(recipe)
        if untimed_only is not None:
            work.untimed_only = untimed_only
        events = _listening(work)
        candidate = work.realise(proposal, total)
    evaluated = any(isinstance(e, EvaluationFinished) and not e.cached for e in events)
    candidate.ran_on = _ran_on(watcher, (started, cpu_started), evaluated_here=evaluated)
    return TaskResult(candidate, events, node=socket.gethostname(), cpus=watcher.cpus)


def _ran_on(watcher: _Watcher, started: tuple[float, float], **more: Any) -> dict[str, Any]:
    """Where and when a task ran: ``started`` is its wall-clock (Unix) and process CPU time at its start;
    ``cpu_s`` the CPU seconds its process used meanwhile (every thread; more than the wall time on
    several CPUs, less when it waited for a CPU)."""
    began, cpu_began = started
    return {
        "node": socket.gethostname(),
        "pid": os.getpid(),
        "cpus": list(watcher.cpus),
        "threads_outside": len(watcher.outside),
        **more,
        "started": round(began, 3),
        "ended": round(time.time(), 3),
        "cpu_s": round(time.process_time() - cpu_began, 3),
    }


def chain_task(recipe: TaskRecipe, steps: tuple[ResolvedPass, ...], cpus: float) -> TaskResult:
    """Realise a chain prefix that several candidates share (no evaluation) on ``ceil(cpus)`` CPUs of
    its own, at most as many as this process may use (the executor may ask for every slot's CPUs)."""
    from olivine.errors import PassRunError

    started, cpu_started = time.time(), time.process_time()
    usable = len(affinity.allowed_cpus()) or cpu_count(cpus)
    error: str | None = None
    with _own_cpus(min(cpu_count(cpus), usable)) as watcher:
        work = work_of(recipe)
        events = _listening(work)
        try:
            work.runner.realise(steps, label="shared prefix: ")
        except PassRunError as exc:
            error = str(exc)
    return TaskResult(
        None,
        events,
        error=error,
        node=socket.gethostname(),
        cpus=watcher.cpus,
        ran_on=_ran_on(watcher, (started, cpu_started)),
    )


def input_task(
    recipe: TaskRecipe,
    model_id: str,
    model: ModelHandle,
    reference: bool,
    cpus: float,
    *,
    untimed_only: bool = False,
) -> TaskResult:
    """Evaluate the search's input model on ``ceil(cpus)`` CPUs of its own (its timed metrics share no
    CPU with other work); the result's ``evaluation`` is what the engine's process would have measured
    and ``ran_on`` says where. An evaluation error is raised (it ends the workflow, as in the engine).
    ``untimed_only``: its untimed metrics only, into the cache (the local pool times it afterwards in the
    engine's process)."""
    started, cpu_started = time.time(), time.process_time()
    with _own_cpus(cpus) as watcher:
        work = work_of(recipe)
        assert work.evaluator is not None, "an input task without an evaluator"
        time_it = (lambda _: False) if untimed_only else None
        evaluation = work.evaluator.evaluate(
            model_id, model, "input model", time_it=time_it, reference=reference
        )
    where = _ran_on(watcher, (started, cpu_started), evaluated_here=not evaluation.cached)
    return TaskResult(None, node=socket.gethostname(), cpus=watcher.cpus, evaluation=evaluation, ran_on=where)


#: What a warm-up task imports (those found): the runtimes a search's ONNX passes and evaluations load,
#: and, for a search from a PyTorch / Hugging Face model, torch and transformers (a tokenizer for its
#: data and user scripts: transformers' auto classes import torch).
WARM_MODULES = ("numpy", "onnx", "onnxruntime", "onnxruntime.quantization")
WARM_TORCH_MODULES = ("torch", "transformers", "transformers.models.auto.tokenization_auto")


def warm_modules(input_model: ModelHandle) -> tuple[str, ...]:
    """What a warm-up task of a search from ``input_model`` imports."""
    return WARM_MODULES + (WARM_TORCH_MODULES if input_model.kind != "onnx" else ())


def import_modules(names: Sequence[str]) -> None:
    """Import ``names`` (those that import: one not installed, or broken here, is left for the candidates
    to report), so that a task process's first candidate does not pay for them. transformers is imported
    the way the engine's process imports it (:func:`olivine.hf_import.import_transformers`: without the
    scikit-learn and scipy integrations, ~1.4 s of CPU per process), so a task process does not load
    more than the engine would."""
    import importlib

    for name in names:
        with suppress(Exception):
            if name == "transformers" or name.startswith("transformers."):
                from olivine.hf_import import import_transformers

                import_transformers()
            importlib.import_module(name)


def warm_task(recipe: TaskRecipe, libraries: tuple[str, ...], cpus: float) -> TaskResult:
    """Prepare a task process for the search's candidates on ``ceil(cpus)`` CPUs of its own: import
    ``libraries`` (those the search's passes and evaluation use) and build the search's runner and
    evaluator, so that its first candidate does not pay them. Nothing is measured."""
    started, cpu_started = time.time(), time.process_time()
    with _own_cpus(cpus) as watcher:
        work_of(recipe)
        import_modules(libraries)
    return TaskResult(
        None, node=socket.gethostname(), cpus=watcher.cpus, ran_on=_ran_on(watcher, (started, cpu_started))
    )


# -- the driver side shared by every spread executor ------------------------------------------------------
def chain_keys(chain: Sequence[ResolvedPass], runner: ChainRunner) -> list[str]:
    """The run key of each step of ``chain`` from the runner's input model (what the cache stores)."""
    keys: list[str] = []
    model_id = runner.input_model_id
    for step in chain:
        model_id = runner.key(step, model_id)
        keys.append(model_id)
    return keys


def shared_prefix(
    batch: Sequence[Proposal], runner: ChainRunner, done: set[str]
) -> tuple[tuple[ResolvedPass, ...], list[str]] | None:
    """The chain prefix that two or more of ``batch``'s candidates share and that is not known to be in
    the cache yet (steps and their run keys), or None. The last step of a candidate's own chain is its own
    work, even when shared. Prefix runs found in the cache are added to ``done``."""
    chains = [p.chain for p in batch if p.steps is not None]
    if len(chains) < 2:
        return None
    keyed = [chain_keys(chain, runner) for chain in chains]
    common = 0
    while all(len(k) > common for k in keyed) and len({k[common] for k in keyed}) == 1:
        common += 1
    common = min(common, min(len(k) for k in keyed) - 1)
    if common <= 0 or keyed[0][common - 1] in done:
        return None
    keys = keyed[0][:common]
    if all(runner.cache.load_run(key) is not None for key in keys):
        done.update(keys)
        return None
    return tuple(chains[0][:common]), keys


def event_paths(event: EngineEvent) -> set[Path]:
    """The cache paths an event announces (a host exports them): a run's folder or a record."""
    if isinstance(event, PassFinished):
        return {event.run_dir}
    if isinstance(event, (PassFailed, EvaluationFinished)):
        return {event.record_path}
    return set()


def lost_candidate(proposal: Proposal, result: TaskResult, nothing: str) -> Candidate:
    """The record of a candidate whose task died or failed outside the candidate's own error handling (a
    crash, a lost node or worker): failed, and the search goes on. ``nothing``: the error when the result
    carries none."""
    return Candidate(
        id=candidate_id(proposal.number),
        index=proposal.number,
        chain=proposal.chain if proposal.steps is not None else proposal.parent,
        point=proposal.described,
        status="failed",
        error=result.error or nothing,
    )
