"""Hugging Face pieces of the data components: local tables, tokenization, token-id dummy inputs.

Nothing here reaches a model hub: local csv / json / parquet files are read here, anything else
``huggingface_dataset`` names goes through :mod:`olivine.data.hub`; tokenizers are local folders
(``transformers`` is imported only when a tokenizer is needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from olivine.data.datasets import SampleListDataset
from olivine.data.params import (
    ComponentParams,
    HuggingfaceDatasetParams,
    TokenizerPreProcessParams,
    TransformersDummyParams,
)
from olivine.data.tables import TABLE_FORMATS, Row, parse_split, read_rows, slice_rows
from olivine.data.user_script import resolve_path
from olivine.errors import ConfigError, DataError, MissingDependencyError, NotSupportedError
from olivine.hf_import import import_transformers

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
_FALLBACK_VOCAB = 100


def data_files_by_split(params: HuggingfaceDatasetParams) -> dict[str, list[str]]:
    """``data_files`` as split -> files (a path or list is the ``train`` split, as in ``datasets``)."""
    files = params.data_files
    if files is None:
        return {}
    if isinstance(files, dict):
        return {split: [f] if isinstance(f, str) else list(f) for split, f in files.items()}
    return {"train": [files] if isinstance(files, str) else list(files)}


def reads_tables(params: HuggingfaceDatasetParams) -> bool:
    """Whether Olivine reads the data itself (local csv / json / parquet files without a ``subset``);
    anything else goes through Hugging Face ``datasets`` (:mod:`olivine.data.hub`)."""
    return params.data_name.lower() in TABLE_FORMATS and params.subset is None


def check_hf_dataset(params: HuggingfaceDatasetParams, base_dir: Path | None = None) -> None:
    """Resolve-time checks: a split that exists in local files; see :mod:`olivine.data.hub` for the rest."""
    if not reads_tables(params):
        from olivine.data.hub import check_hub_dataset

        check_hub_dataset(params, base_dir)
        return
    if params.subset is not None:
        raise NotSupportedError("'subset' selects a hub dataset's configuration; local files have none")
    if params.field is not None and params.data_name.lower() != "json":
        raise ConfigError("'field' applies to data_name 'json' only", path="field")
    if params.split is None:
        raise ConfigError("required (for data_files given as a path or list it is 'train')", path="split")
    try:
        name, _, _ = parse_split(params.split)
    except ValueError as exc:
        raise ConfigError(str(exc), path="split") from None
    splits = data_files_by_split(params)
    if not splits and params.data_dir is None:
        raise ConfigError("give 'data_files' (or 'data_dir' holding the files)", path="data_files")
    if splits and name not in splits:
        raise ConfigError(
            f"split '{name}' is not in data_files (splits: {', '.join(splits)}; a single path or a list of "
            "paths is the 'train' split, as in Hugging Face datasets)",
            path="split",
        )


def csv_header(params: HuggingfaceDatasetParams, base_dir: Path | None) -> tuple[Path, list[str]] | None:
    """(file, column names) of the first CSV file of the selected split, read without loading the rows;
    None when the data is not a local CSV file."""
    import csv

    if params.data_name.lower() != "csv" or params.data_dir:
        return None
    name = parse_split(params.split or "")[0]
    files = data_files_by_split(params).get(name)
    if not files:
        return None
    path = resolve_path(files[0], base_dir)
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        return path, next(csv.reader(fh), [])


def json_columns(params: HuggingfaceDatasetParams, base_dir: Path | None) -> tuple[Path, list[str]] | None:
    """(file, keys of the first record) of the first JSON / JSON Lines file of the selected split; None
    when the data is not a local JSON file or its first record cannot be read cheaply."""
    if params.data_name.lower() != "json" or params.data_dir:
        return None
    files = data_files_by_split(params).get(parse_split(params.split or "")[0])
    path = resolve_path(files[0], base_dir) if files else None
    if path is None or not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline().strip()
        record = json.loads(first) if first.startswith("{") else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a JSON document over several lines: its columns are checked when it is read
    return (path, list(record)) if isinstance(record, dict) else None


def check_columns(load: HuggingfaceDatasetParams, pre: ComponentParams, base_dir: Path | None) -> None:
    """The pre-processing's columns against a local CSV header or the first JSON Lines record, so
    --dry-run catches a typo."""
    from olivine.data.text_generation import TextGenerationPreProcessParams

    found = csv_header(load, base_dir) or json_columns(load, base_dir)
    if found is None:
        return
    path, header = found
    wanted: list[tuple[str, str]] = []
    if isinstance(pre, TokenizerPreProcessParams):
        wanted = [("input_cols", c) for c in pre.input_cols]
        if pre.label_col is not None:
            wanted.append(("label_col", pre.label_col))
    elif isinstance(pre, TextGenerationPreProcessParams):
        if pre.chat_template:
            wanted = [("message_col", pre.message_col)]
        elif pre.text_template is None and pre.text_formatting_func is None:
            wanted = [("text_cols", c) for c in pre.columns]
    for key, column in wanted:
        if column not in header:
            raise ConfigError(
                f"column '{column}' is not in the header of {path} (columns: {', '.join(header)})",
                path=f"pre_process_data_config.params.{key}",
            )


def load_hf_dataset(params: HuggingfaceDatasetParams, base_dir: Path | None) -> Any:
    """Olive's ``huggingface_dataset``: rows of local tables, else the ``datasets`` object it loads."""
    if reads_tables(params):
        return load_hf_rows(params, base_dir)
    from olivine.data.hub import load_hub_dataset

    return load_hub_dataset(params, base_dir)


def load_hf_rows(params: HuggingfaceDatasetParams, base_dir: Path | None) -> list[Row]:
    check_hf_dataset(params, base_dir)
    fmt = params.data_name.lower()
    name, start, stop = parse_split(params.split or "")
    folder = resolve_path(params.data_dir, base_dir) if params.data_dir else None
    files = data_files_by_split(params).get(name)
    if files is None:
        assert folder is not None  # check_hf_dataset guarantees data_files or data_dir
        suffixes = {"csv": (".csv",), "json": (".json", ".jsonl"), "parquet": (".parquet",)}[fmt]
        paths = sorted(p for p in folder.iterdir() if p.suffix in suffixes)
    else:
        paths = [resolve_path(f, folder or base_dir) for f in files]
    rows = slice_rows(read_rows(fmt, paths, field=params.field), start, stop)
    for col, value in (params.col_filters or {}).items():
        rows = [r for r in rows if r.get(col) == value]
    return rows


def load_tokenizer(model_name: str | None, tokenizer_path: str | None, base_dir: Path | None) -> Any:
    """An ``AutoTokenizer`` from a local folder: ``model_name`` if given, else the input model's."""
    source = model_name or tokenizer_path
    if not source:
        raise DataError(
            "tokenizing needs a tokenizer: set 'model_name' to a local tokenizer folder, or use an input "
            "model that has one (HfModel model_path, or model_attributes.hf_model_path)"
        )
    folder = resolve_path(source, base_dir)
    if not folder.is_dir():
        raise NotSupportedError(
            f"tokenizer '{source}' is not a local folder; Olivine has no model hub (point model_name at a "
            "folder with the tokenizer files)"
        )
    try:
        auto_tokenizer = import_transformers().AutoTokenizer
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("tokenizing needs transformers: pip install 'olivine[hf]'") from exc
    try:
        return auto_tokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot load a tokenizer from {folder}: {exc}") from exc


def tokenize_rows(
    rows: list[Row],
    params: TokenizerPreProcessParams,
    *,
    tokenizer_path: str | None,
    base_dir: Path | None,
) -> SampleListDataset:
    """Olive's ``huggingface_pre_process`` / ``tokenizer_pre_process`` on local rows."""
    if params.max_samples is not None:
        rows = rows[: params.max_samples]
    missing = [c for c in params.input_cols if rows and c not in rows[0]]
    label_col = params.label_col
    if label_col is not None and rows and label_col not in rows[0]:
        missing.append(label_col)
    if missing:
        raise DataError(f"columns {missing} are not in the data (columns: {', '.join(rows[0])})")
    if not rows:
        return SampleListDataset([])
    if params.align_labels and label_col is not None:
        source = params.model_config_path or params.model_name or tokenizer_path
        rows = align_labels(rows, label_col, _label2id(source, base_dir))
    tokenizer = load_tokenizer(params.model_name, tokenizer_path, base_dir)
    texts = [[r[c] for r in rows] for c in params.input_cols]
    encoded = tokenizer(
        *texts,
        padding=params.padding,
        truncation=params.truncation,
        max_length=params.max_length,
        is_split_into_words=params.is_split_into_words,
        add_special_tokens=params.add_special_tokens,
    )
    names = list(encoded.keys())
    samples = []
    for i, row in enumerate(rows):
        inputs = {n: np.asarray(encoded[n][i], dtype=np.int64) for n in names}
        label = None if label_col is None else np.asarray(row[label_col])
        samples.append((inputs, label))
    return SampleListDataset(samples)


def _label2id(source: str | None, base_dir: Path | None) -> dict[str, int]:
    """The model's ``label2id`` from the ``config.json`` of a local model folder."""
    folder = resolve_path(source, base_dir) if source else None
    config = folder / "config.json" if folder is not None else None
    if config is None or not config.is_file():
        raise DataError(
            f"align_labels needs the model's config.json (label2id); none in {folder or 'no model folder'}"
        )
    mapping = json.loads(config.read_text(encoding="utf-8")).get("label2id") or {}
    return {str(k): int(v) for k, v in mapping.items()}


def align_labels(rows: list[Row], label_col: str, label2id: dict[str, int]) -> list[Row]:
    """Olive's ``align_labels``: label names become the model's ids (matched case-insensitively, as
    ``datasets.Dataset.align_labels_with_mapping`` does); labels that are already ids stay."""
    lowered = {k.lower(): v for k, v in label2id.items()}
    out = []
    for row in rows:
        label = row[label_col]
        if isinstance(label, str) and not label.lstrip("-").isdigit():
            if label.lower() not in lowered:
                raise DataError(f"label '{label}' is not in the model's label2id ({', '.join(label2id)})")
            row = {**row, label_col: lowered[label.lower()]}
        out.append(row)
    return out


def vocab_size_near(model_name: str | None, tokenizer_path: str | None, base_dir: Path | None) -> int:
    """``vocab_size`` from a local ``config.json`` (model_name first), else a small safe default."""
    for source in (model_name, tokenizer_path):
        if not source:
            continue
        config = resolve_path(source, base_dir) / "config.json"
        if config.is_file():
            try:
                size = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(size, int) and size > 1:
                return size
    return _FALLBACK_VOCAB


def token_dummy_dataset(
    params: TransformersDummyParams,
    *,
    model_inputs: list[str] | None,
    tokenizer_path: str | None,
    base_dir: Path | None,
) -> SampleListDataset:
    """Random token ids (seed 0) of length ``seq_len`` with matching mask / type / position inputs."""
    wanted = params.input_names or model_inputs or list(TOKEN_INPUTS[:3])
    if params.ignore_input_fields:
        wanted = [n for n in wanted if n not in params.ignore_input_fields]
    past_names = [n for n in wanted if _past_pattern(params).match(n)]
    unknown = [n for n in wanted if n not in TOKEN_INPUTS and n not in past_names]
    if unknown:
        raise NotSupportedError(
            f"Olivine's transformers dummy data produces {', '.join(TOKEN_INPUTS)} and the past key/values "
            f"({params.ort_past_key_name}, {params.ort_past_value_name}); the model also needs {unknown}"
        )
    config = _config_near(params.model_name, tokenizer_path, base_dir)
    vocab = params.vocab_size or vocab_size_near(params.model_name, tokenizer_path, base_dir)
    rng = np.random.default_rng(0)
    seq = params.seq_len
    past = params.past_seq_len if past_names else 0
    cache = _cache_shape(config, past) if past_names else None
    if past_names and cache is None:
        raise DataError(
            "past key/value inputs need the model's config.json (num_attention_heads or n_head, "
            "hidden_size or n_embd) in model_name or the input model's folder"
        )
    samples = []
    for _ in range(params.max_samples):
        arrays = {
            "input_ids": rng.integers(0, vocab, size=seq, dtype=np.int64),
            "attention_mask": np.ones(past + seq, dtype=np.int64),
            "token_type_ids": np.zeros(seq, dtype=np.int64),
            "position_ids": np.arange(past, past + seq, dtype=np.int64),
        }
        dtype = np.float16 if params.use_fp16 else np.float32
        for name in past_names:  # a cache of past_seq_len tokens: [kv_heads, past_seq_len, head_dim]
            arrays[name] = rng.standard_normal(cache).astype(dtype)
        samples.append(({n: arrays[n] for n in wanted}, np.asarray(1)))
    return SampleListDataset(samples)


def _past_pattern(params: TransformersDummyParams) -> Any:
    import re

    names = (params.ort_past_key_name, params.ort_past_value_name)
    return re.compile("|".join(re.escape(n).replace(re.escape("<id>"), r"\d+") for n in names) + "$")


def _config_near(model_name: str | None, tokenizer_path: str | None, base_dir: Path | None) -> dict[str, Any]:
    for source in (model_name, tokenizer_path):
        config = resolve_path(source, base_dir) / "config.json" if source else None
        if config is not None and config.is_file():
            try:
                loaded = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(loaded, dict):
                return loaded
    return {}


def _cache_shape(config: dict[str, Any], past: int) -> tuple[int, int, int] | None:
    """[kv_heads, past, head_dim] from a transformers config.json; None when it does not say.

    The raw file uses each family's own names (transformers maps them on the config object): GPT-2,
    GPT-J and CodeGen say ``n_head`` / ``n_embd``, MPT ``n_heads`` / ``d_model``, GPT-Neo ``num_heads``,
    Bloom ``n_embed``, Falcon ``num_kv_heads`` or ``multi_query``."""

    def first(*keys: str) -> int | None:
        for key in keys:
            value = config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    heads = first("num_attention_heads", "n_head", "n_heads", "num_heads")
    hidden = first("hidden_size", "n_embd", "n_embed", "d_model")
    if heads is None or hidden is None:
        return None
    kv_heads = first("num_key_value_heads", "num_kv_heads", "n_kv_heads") or (
        1 if config.get("multi_query") is True else heads
    )
    head_dim = first("head_dim") or hidden // heads
    return kv_heads, past, head_dim
