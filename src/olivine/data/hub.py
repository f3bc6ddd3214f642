"""Olive's ``huggingface_dataset`` through Hugging Face ``datasets``: a Hub dataset (``glue`` / ``mrpc``), a
local dataset folder, or a packaged builder other than the local tables Olivine reads itself (``text``,
``imagefolder``, ...).

The call is Olive 0.13's: ``load_dataset(path=data_name, name=subset, data_dir=data_dir, split=split,
data_files=data_files, **rest)`` (``streaming``, ``trust_remote_code``, ``field``), then ``col_filters``
through ``Dataset.filter``. The result is the ``datasets`` object itself, as Olive hands it to the
pre-processing (a user script may call ``.map`` on it); the built-in pre-processing iterates its rows.

``datasets`` is an optional dependency (``pip install 'olivine[datasets]'``), imported only here and only
when such data is loaded; validation checks that it is installed without importing it. Offline mode
(``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``) is ``datasets``' own: it reads its cache. A Hub it cannot
reach is one line naming ``data_name``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from olivine.data.params import HuggingfaceDatasetParams
from olivine.data.user_script import resolve_path
from olivine.errors import ConfigError, DataError, MissingDependencyError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'olivine[datasets]'"
#: ``datasets``' packaged builders: never a Hub name or a local folder (``datasets`` checks them first).
PACKAGED_BUILDERS = frozenset(
    {"csv", "json", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder", "videofolder"}
    | {"webdataset", "xml", "sql", "hdf5", "pdffolder", "niftifolder", "lance", "eval", "generator"}
)
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = ("1", "on", "yes", "true")


def offline_vars() -> list[str]:
    """The offline-mode variables set to a true value (``datasets`` and ``huggingface_hub`` honour both)."""
    return [name for name in _OFFLINE_VARS if os.environ.get(name, "").strip().lower() in _TRUE]


def local_source(data_name: str, base_dir: Path | None) -> Path | None:
    """The local dataset folder (or loading file) ``data_name`` names, or None for a Hub name / builder."""
    if data_name.lower() in PACKAGED_BUILDERS:
        return None
    path = resolve_path(data_name, base_dir)
    return path if path.exists() else None


def is_hub_name(data_name: str, base_dir: Path | None) -> bool:
    return data_name.lower() not in PACKAGED_BUILDERS and local_source(data_name, base_dir) is None


def datasets_installed() -> bool:
    """Whether ``datasets`` can be imported, without importing it (~3 s with pandas and pyarrow)."""
    return importlib.util.find_spec("datasets") is not None


def check_hub_dataset(params: HuggingfaceDatasetParams, base_dir: Path | None) -> None:
    """Resolve-time checks of data that ``datasets`` loads (see the module docstring)."""
    name = params.data_name
    if not datasets_installed():
        # A ConfigError with the key: validation refuses the config in one line, like a missing file.
        raise ConfigError(
            f"'{name}' is loaded with Hugging Face datasets, which is not installed: {INSTALL_HINT} "
            "(or point data_files at local csv/json/parquet files)",
            path="data_name",
        )
    if params.field is not None and name.lower() != "json":
        raise ConfigError("'field' applies to data_name 'json' only", path="field")
    if params.split is None:
        raise ConfigError(
            "required: Olive hands the pre-processing one split (e.g. 'validation')", path="split"
        )
    if not is_hub_name(name, base_dir):
        return
    offline = offline_vars()
    if offline and not _cached(name):
        raise ConfigError(
            f"'{name}' is a Hugging Face Hub dataset, the Hub is off ({offline[0]} is set) and it is not in "
            "the local datasets cache; unset it to download the data, or point data_files at local files",
            path="data_name",
        )
    if offline:
        return
    host = unresolvable_hub_host()
    if host is not None and not _cached(name):
        raise ConfigError(
            f"'{name}' is a Hugging Face Hub dataset, the Hub's host {host} does not resolve here (no "
            "network?) and it is not in the local datasets cache; point data_files at local files",
            path="data_name",
        )
    logger.warning(
        "data_name '%s' is read from the Hugging Face Hub when the workflow runs: the Hub (or the "
        "datasets cache) must be reachable from where it runs",
        name,
    )


def unresolvable_hub_host(timeout_s: float = 2.0) -> str | None:
    """The Hub's host name (``HF_ENDPOINT``, default huggingface.co) when DNS cannot resolve it within
    ``timeout_s``, else None. Without this, ``datasets`` retries for ~30 s per dataset at run time before
    it fails. Skipped (None) behind a proxy, which resolves names itself."""
    import socket
    import threading
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
    if not host:
        return None
    resolved: list[bool] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            resolved.append(True)
        except OSError:
            resolved.append(False)

    worker = threading.Thread(target=resolve, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(timeout_s)
    return None if resolved == [True] else host  # no answer within timeout_s counts as unresolvable


def _cache_dirs() -> list[Path]:
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    return [
        Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets"),
        Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub"),
    ]


def _cached(name: str) -> bool:
    """Whether either cache holds an entry for ``name``. Lenient on purpose: a Hub name may be cached under
    its canonical repository (``glue`` as ``nyu-mll___glue``), so any entry ending in its last part counts;
    ``datasets`` itself decides at run time."""
    leaf = name.rstrip("/").split("/")[-1].lower()
    for folder in _cache_dirs():
        try:
            entries = [p.name.lower() for p in folder.iterdir()]
        except OSError:
            continue
        if any(e == leaf or e.endswith(("___" + leaf, "--" + leaf)) for e in entries):
            return True
    return False


def load_kwargs(params: HuggingfaceDatasetParams, base_dir: Path | None) -> dict[str, Any]:
    """The keyword arguments of Olive's ``load_dataset`` call. A builder's local ``data_dir`` /
    ``data_files`` are made absolute (relative to the config's folder); a Hub dataset's or a local dataset
    folder's are paths inside it and stay as given."""
    from olivine.data.paths import absolute_params

    source = local_source(params.data_name, base_dir)
    given = params.model_dump(exclude={"col_filters"}, exclude_none=True)
    files: dict[str, Any] = {k: given[k] for k in ("data_dir", "data_files") if k in given}
    if params.data_name.lower() in PACKAGED_BUILDERS:  # else they are paths inside the dataset, as given
        files = absolute_params(files, base_dir)
    kwargs: dict[str, Any] = {
        "path": str(source) if source is not None else params.data_name,
        "name": params.subset,
        "data_dir": files.get("data_dir"),
        "split": params.split,
        "data_files": files.get("data_files"),
    }
    if params.streaming:
        kwargs["streaming"] = True
    if params.field is not None:
        kwargs["field"] = params.field
    if params.trust_remote_code is not None:
        kwargs["trust_remote_code"] = params.trust_remote_code
    return kwargs


def load_hub_dataset(params: HuggingfaceDatasetParams, base_dir: Path | None) -> Any:
    """``datasets.load_dataset`` as Olive calls it; errors become one :class:`DataError` line."""
    try:
        from datasets import load_dataset
        from datasets.utils.logging import disable_progress_bar, set_verbosity_error
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"data_name '{params.data_name}' needs Hugging Face datasets: {INSTALL_HINT}"
        ) from exc
    disable_progress_bar()
    set_verbosity_error()
    name = params.data_name
    try:
        dataset = load_dataset(**load_kwargs(params, base_dir))
    except ConnectionError as exc:  # datasets' and huggingface_hub's "cannot reach" (offline mode included)
        offline = offline_vars()
        why = f"offline mode is on ({', '.join(offline)})" if offline else "no network or the Hub is down"
        raise DataError(
            f"data_name '{name}': cannot reach the Hugging Face Hub ({why}) and the dataset is not in the "
            f"local datasets cache ({_first_line(exc)})"
        ) from exc
    except Exception as exc:  # datasets raises ValueError, FileNotFoundError, TypeError (a bad kwarg), ...
        raise DataError(f"data_name '{name}': {type(exc).__name__}: {_first_line(exc)}") from exc
    filters = params.col_filters
    if filters:
        dataset = dataset.filter(lambda row: all(row[col] == value for col, value in filters.items()))
    return dataset


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
