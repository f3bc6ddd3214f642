"""Engine keys (``engine: {...}`` or flattened at the top level) and the search strategy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from olivine.config.base import StrictModel
from olivine.config.evaluators import EvaluatorConfig
from olivine.config.paths import path_text_problem
from olivine.config.systems import SystemConfig, normalize_system
from olivine.config.typed import prefixed

_LEGACY_ALGORITHMS = {"exhaustive": "sequential", "random": "random", "tpe": "tpe"}


class ZipfilePackagingOptions(StrictModel):
    """Olive's ``packaging_config.config`` of a ``Zipfile``. ``export_in_mlflow_format`` (an MLflow model
    instead of ``model.onnx``) is refused: Olivine does not write MLflow models."""

    export_in_mlflow_format: bool = False

    @field_validator("export_in_mlflow_format")
    @classmethod
    def _no_mlflow(cls, value: bool) -> bool:
        if value:
            raise ValueError("an MLflow model is not written by Olivine (mlflow); set it to false")
        return value


class PackagingConfig(StrictModel):
    """Olive's ``packaging_config``: after the run, the output models go into ``<output folder>/<name>.zip``
    (see :mod:`olivine.engine.packaging`). Only ``Zipfile`` is built; Olive's ``Dockerfile`` is refused."""

    type: Literal["Zipfile"] = "Zipfile"
    name: str = Field(default="OutputModels", min_length=1)
    config: ZipfilePackagingOptions | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() == "zipfile":
            return "Zipfile"
        if isinstance(value, str) and value.lower() == "dockerfile":
            raise ValueError(
                "'Dockerfile' packaging (a Docker build context) is not supported by Olivine; use Zipfile"
            )
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"'{value}' must be a file name (the zip is written in the output folder)")
        return value


#: The keys Olive's samplers read from ``sampler_config`` (TPE's ``multivariate`` / ``group`` included).
_SAMPLER_KEYS = ("max_samples", "seed", "multivariate", "group")


class SearchStrategyConfig(StrictModel):
    """Olive's ``search_strategy`` (see :mod:`olivine.search`).

    Olive nests the sampler's own keys (``max_samples``, ``seed``, and TPE's ``multivariate``/``group``)
    under ``sampler_config`` or writes them flat beside ``sampler``; both are read. ``stop_when_goals_met``,
    ``max_iter`` and ``max_time`` apply to the ``joint`` order only (Olive ignores them for ``pass-by-pass``).
    """

    execution_order: Literal["joint", "pass-by-pass"] = "joint"
    sampler: str = "sequential"
    max_samples: int = Field(default=0, ge=0)
    #: Olive's samplers seed optuna's (numpy's) generator, which takes 0 .. 2**32 - 1.
    seed: int = Field(default=1, ge=0, le=2**32 - 1)
    multivariate: bool = True
    group: bool = True
    stop_when_goals_met: bool = False
    max_iter: int | None = Field(default=None, ge=1)
    max_time: float | None = Field(default=None, gt=0)
    include_pass_params: bool = True
    #: Olive <= 0.7: how many output models (the best of the Pareto frontier, in rank order); None: all
    #: of the frontier. Olivine writes the best model to the output folder and lists these ids in the
    #: footprint's ``output_models``.
    output_model_num: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, value: Any) -> Any:
        """Olive before 0.8 wrote ``search_algorithm`` + ``search_algorithm_config``; later Olive nests
        the sampler's keys under ``sampler_config``."""
        if not isinstance(value, dict):
            return value
        out = dict(value)
        nested = out.pop("sampler_config", None) or {}
        if not isinstance(nested, dict):
            raise ValueError("'sampler_config' must be a mapping")
        for key, val in nested.items():
            if key not in _SAMPLER_KEYS:
                allowed = ", ".join(_SAMPLER_KEYS)
                raise ValueError(f"sampler_config has an unknown key '{key}'; allowed: {allowed}")
            if key in out and out[key] != val:
                raise ValueError(f"'{key}' is given both flat and under 'sampler_config'")
            out[key] = val
        if "search_algorithm" not in out:
            return out
        algo = str(out.pop("search_algorithm")).lower()
        if algo not in _LEGACY_ALGORITHMS:
            raise ValueError(f"unknown search_algorithm '{algo}'; allowed: exhaustive, random, tpe")
        out.setdefault("sampler", _LEGACY_ALGORITHMS[algo])
        legacy_cfg = dict(out.pop("search_algorithm_config", None) or {})
        # Olive < 0.8 folded keys of search_strategy that are not its own into search_algorithm_config
        # (a NestedConfig): a flat ``num_samples`` is the sampler's.
        if "num_samples" in out:
            legacy_cfg.setdefault("num_samples", out.pop("num_samples"))
        if legacy_cfg.pop("with_replacement", out.pop("with_replacement", False)):
            raise ValueError(
                "with_replacement: true (Olive < 0.8's random search) is not supported (allowed: false)"
            )
        if "num_samples" in legacy_cfg:
            out.setdefault("max_samples", legacy_cfg.pop("num_samples"))
        elif algo in ("random", "tpe"):
            out.setdefault("max_samples", 1)  # Olive < 0.8's default num_samples for these two algorithms
        out.update({k: v for k, v in legacy_cfg.items() if k not in out})
        return out

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        from olivine.search.samplers import SAMPLERS

        if value not in SAMPLERS:
            raise ValueError(f"unknown sampler '{value}'; allowed: {', '.join(SAMPLERS.names())}")
        return SAMPLERS.canonical_name(value)


class EngineConfig(StrictModel):
    search_strategy: SearchStrategyConfig | bool | None = None
    host: str | SystemConfig | None = None
    target: str | SystemConfig | None = None
    evaluator: str | EvaluatorConfig | None = None
    evaluate_input_model: bool = True
    #: Olivine's key: also evaluate every intermediate pass output and pick the best of all of them.
    #: Olive (without search) evaluates only the final model of the flow, which is the default here too.
    evaluate_intermediate_models: bool = False
    output_dir: str = "olivine-output"
    cache_dir: str = ".olivine-cache"
    clean_cache: bool = False
    clean_evaluation_cache: bool = False
    plot_pareto_frontier: bool = False
    log_severity_level: int = Field(default=1, ge=0, le=4)
    ort_log_severity_level: int = Field(default=3, ge=0, le=4)
    #: onnxruntime's Python-side log level (Olive >= 0.4); Olivine's onnxruntime logging follows
    #: ``ort_log_severity_level`` and accepts this one for compatibility.
    ort_py_log_severity_level: int = Field(default=3, ge=0, le=4)
    log_to_file: bool = False
    no_artifacts: bool = False
    #: Olive accepts one packaging config or a list; read as a list.
    packaging_config: list[PackagingConfig] | None = None

    #: Olive 0.13's switch for its shared Azure Blob cache: only ``false`` (the default) is accepted.
    enable_shared_cache: bool = False

    @field_validator("enable_shared_cache")
    @classmethod
    def _no_shared_cache(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "Olive's shared cache (an Azure Blob container) is not supported by Olivine: its cache is "
                "local (cache_dir); set false or drop the key"
            )
        return value

    @field_validator("output_dir", "cache_dir")
    @classmethod
    def _usable_path(cls, value: str) -> str:
        problem = path_text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="before")
    @classmethod
    def _systems(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = _fold_cache_config(dict(value))
            for key in ("output_dir", "cache_dir"):
                if key in value and value[key] is None:
                    del value[key]  # Olive accepts null for "the default"
            for key in ("host", "target"):
                if isinstance(value.get(key), dict):
                    value[key] = prefixed(f"engine.{key}", normalize_system, value[key])
        return value

    @property
    def search(self) -> SearchStrategyConfig | None:
        """The search strategy in effect: ``true`` means Olive's default (joint, sequential), ``false`` or
        ``null`` means no search."""
        if self.search_strategy is True:
            return SearchStrategyConfig()
        if isinstance(self.search_strategy, SearchStrategyConfig):
            return self.search_strategy
        return None

    @field_validator("packaging_config", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def packagings(self) -> list[PackagingConfig]:
        return list(self.packaging_config or [])


#: Olive 0.13's ``CacheConfig`` keys (``engine.cache_config``), each with its engine key.
_CACHE_CONFIG_KEYS = {
    "cache_dir": "cache_dir",
    "clean_cache": "clean_cache",
    "clean_evaluation_cache": "clean_evaluation_cache",
    "enable_shared_cache": "enable_shared_cache",
    "account_name": None,  # the shared cache's storage account: unused without it, as in Olive
    "container_name": None,
    "update_shared_cache": None,
}


def _fold_cache_config(engine: dict[str, Any]) -> dict[str, Any]:
    """Olive 0.13's ``cache_config`` (a mapping that Olive's engine uses instead of ``cache_dir``,
    ``clean_cache``, ``clean_evaluation_cache``, ``enable_shared_cache``): its keys become those engine
    keys."""
    cache = engine.pop("cache_config", None)
    if cache is None:
        return engine
    if not isinstance(cache, dict):
        raise ValueError("cache_config must be a mapping (Olive's CacheConfig)")
    for key, val in cache.items():
        if key not in _CACHE_CONFIG_KEYS:
            allowed = ", ".join(_CACHE_CONFIG_KEYS)
            raise ValueError(f"cache_config.{key}: unknown key; allowed: {allowed}")
        target = _CACHE_CONFIG_KEYS[key]
        if target is not None:
            engine[target] = val
    return engine


ENGINE_KEYS = frozenset(EngineConfig.model_fields) | {"cache_config"}
