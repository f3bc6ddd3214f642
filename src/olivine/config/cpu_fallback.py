"""The CPU fallback a user asks for (``olivine run --cpu-fallback``): a config that targets a GPU, an NPU or
a non-CPU execution provider is rewritten to run on the CPU, and every key changed is reported.

Without the fallback such a config is refused at validation (Olivine runs models on the CPU only); with it,
the rewritten config is what runs and what a remote host receives, so every host runs the same thing.
The rewrite works on the raw mapping, before validation, so that the usual checks then apply to it.

What is rewritten (Olive's keys): each system's ``accelerators`` (``device`` -> ``cpu``, the execution
providers -> ``CPUExecutionProvider``), ``execution_provider`` of the input model's and of each metric's
``inference_settings``, and the pass parameters ``use_gpu`` (-> false), ``device`` (-> ``cpu``),
``providers_list`` and ``execution_provider`` (-> ``CPUExecutionProvider``), ``io_bind`` (-> false), and
ModelBuilder's GPU precisions (``fp16`` / ``bf16`` -> ``fp32``) and GPU-only switches (``enable_cuda_graph``,
``use_cuda_bf16``, ``use_webgpu_fp32`` -> false).
"""

from __future__ import annotations

import copy
from typing import Any

CPU_EP = "CPUExecutionProvider"


def to_cpu(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``raw`` that runs on the CPU, and one line per key changed (``key: 'x' -> 'y'``)."""
    out = copy.deepcopy(raw)
    notes: list[str] = []
    for name, system in _items(out.get("systems")):
        _accelerators(system, f"systems.{name}", notes)
    engine = _dict(out.get("engine"))
    for holder, prefix in ((out, ""), (engine, "engine.")):
        for key in ("host", "target"):
            if isinstance(holder.get(key), dict):
                _accelerators(holder[key], f"{prefix}{key}", notes)
    model = out.get("input_model")
    if isinstance(model, dict):
        inner = _dict(model.get("config")) or model
        where = "input_model.config" if inner is not model else "input_model"
        _settings(inner.get("inference_settings"), f"{where}.inference_settings", notes)
    for name, evaluator in _items(out.get("evaluators")):
        metrics = evaluator.get("metrics")
        for index, metric in enumerate(metrics if isinstance(metrics, list) else []):
            if not isinstance(metric, dict):
                continue
            where = f"evaluators.{name}.metrics.{index}"
            user = _dict(metric.get("user_config"))
            for holder, prefix in ((user, f"{where}.user_config"), (metric, where)):
                settings = holder.get("inference_settings")
                if isinstance(settings, dict):
                    _settings(settings.get("onnx"), f"{prefix}.inference_settings.onnx", notes)
    passes = _dict(out.get("passes"))
    for name, value in passes.items():
        alternatives = [(f"passes.{name}", value)] if isinstance(value, dict) else []
        if isinstance(value, list):  # alternatives searched under one name
            alternatives = [(f"passes.{name}.{i}", v) for i, v in enumerate(value) if isinstance(v, dict)]
        for where, entry in alternatives:
            _pass(entry, where, notes)
    return out, notes


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict):
        return []
    return [(str(k), v) for k, v in value.items() if isinstance(v, dict)]


def _accelerators(system: dict[str, Any], where: str, notes: list[str]) -> None:
    inner = _dict(system.get("config")) or system
    prefix = f"{where}.config" if inner is not system else where
    accelerators = inner.get("accelerators")
    if not isinstance(accelerators, list):
        return
    for index, acc in enumerate(accelerators):
        if not isinstance(acc, dict):
            continue
        device = acc.get("device")
        if isinstance(device, str) and device.lower() != "cpu":
            notes.append(f"{prefix}.accelerators.{index}.device: '{device}' -> 'cpu'")
            acc["device"] = "cpu"
        eps = acc.get("execution_providers")
        if isinstance(eps, list) and any(ep != CPU_EP for ep in eps):
            notes.append(f"{prefix}.accelerators.{index}.execution_providers: {eps} -> ['{CPU_EP}']")
            acc["execution_providers"] = [CPU_EP]


def _settings(settings: Any, where: str, notes: list[str]) -> None:
    if not isinstance(settings, dict) or "execution_provider" not in settings:
        return
    value = settings["execution_provider"]
    entries = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    names = [e[0] if isinstance(e, list | tuple) and e else e for e in entries]
    if any(name != CPU_EP for name in names):
        notes.append(f"{where}.execution_provider: {value!r} -> ['{CPU_EP}']")
        settings["execution_provider"] = [CPU_EP]
        settings.pop("provider_options", None)


def _pass(entry: dict[str, Any], where: str, notes: list[str]) -> None:
    for holder, prefix in ((entry.get("config"), f"{where}.config"), (entry, where)):
        if not isinstance(holder, dict):
            continue
        if holder.get("use_gpu") is True:
            notes.append(f"{prefix}.use_gpu: true -> false")
            holder["use_gpu"] = False
        device = holder.get("device")
        if isinstance(device, str) and device.lower() != "cpu":
            notes.append(f"{prefix}.device: '{device}' -> 'cpu'")
            holder["device"] = "cpu"
        providers = holder.get("providers_list")
        if isinstance(providers, list | str) and providers not in ([CPU_EP], CPU_EP):
            names = [providers] if isinstance(providers, str) else providers
            if any((p[0] if isinstance(p, list | tuple) and p else p) != CPU_EP for p in names):
                notes.append(f"{prefix}.providers_list: {providers!r} -> ['{CPU_EP}']")
                holder["providers_list"] = [CPU_EP]
        _settings(holder, prefix, notes)
        gpu_only: tuple[str, ...] = ("io_bind",)
        if str(entry.get("type", "")).lower() == "modelbuilder":
            precision = holder.get("precision")
            if isinstance(precision, str) and precision.lower() in ("fp16", "bf16"):
                notes.append(f"{prefix}.precision: '{precision}' -> 'fp32'")
                holder["precision"] = "fp32"
            gpu_only += ("enable_cuda_graph", "use_cuda_bf16", "use_webgpu_fp32")
        for key in gpu_only:
            if holder.get(key) is True:
                notes.append(f"{prefix}.{key}: true -> false")
                holder[key] = False
