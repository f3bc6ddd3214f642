"""Olivine's built-in data components and containers, under Olive's names.

Built-in component functions receive a :class:`BuildContext` and their validated parameter model; user
components (from a ``user_script``) are called the way Olive calls them, see :mod:`olivine.data.components`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olivine.data import params as p
from olivine.data.registry import ComponentKind
from olivine.data.text_generation import TextGenerationPreProcessParams, check_text_generation
from olivine.data.user_script import resolve_path
from olivine.errors import DataError

if TYPE_CHECKING:
    from olivine.data.loader import DataLoader

# numpy, the datasets and the loaders are imported by the functions that build data: validating a
# data config (every `olivine run`, also a submission) needs only the components' parameter models.


@dataclass(frozen=True)
class BuildContext:
    """What built-in components may use besides their parameters."""

    base_dir: Path | None = None
    tokenizer_path: str | None = None
    model_inputs: list[str] | None = None


@dataclass(frozen=True)
class Builtin:
    """A built-in component: its function, its parameter model, and optional resolve-time checks."""

    func: Callable[..., Any]
    params: type[p.ComponentParams]
    check: Callable[[Any, Path | None], None] | None = None


@dataclass(frozen=True)
class Container:
    """A data container: the component type used for each kind the data config leaves out."""

    name: str
    defaults: dict[ComponentKind, str | None]
    # Olive's HuggingfaceContainer picks components by a ``task`` parameter.
    task_components: dict[str, dict[ComponentKind, str]] = field(default_factory=dict)


# ---- load_dataset -----------------------------------------------------------------------------------


def _dummy(ctx: BuildContext, prm: p.DummyDatasetParams) -> Any:
    from olivine.data.datasets import RepeatDataset, dummy_sample

    return RepeatDataset(dummy_sample(prm.input_shapes, prm.input_names, prm.input_types), prm.max_samples)


def _token_dummy(ctx: BuildContext, prm: p.TransformersDummyParams) -> Any:
    from olivine.data.hf import token_dummy_dataset

    return token_dummy_dataset(
        prm, model_inputs=ctx.model_inputs, tokenizer_path=ctx.tokenizer_path, base_dir=ctx.base_dir
    )


def _no_dataset(ctx: BuildContext, prm: p.PlaceholderDatasetParams) -> Any:
    return None


def _hf_dataset(ctx: BuildContext, prm: p.HuggingfaceDatasetParams) -> Any:
    from olivine.data.hf import load_hf_dataset

    return load_hf_dataset(prm, ctx.base_dir)


def _check_hf_dataset(prm: p.HuggingfaceDatasetParams, base_dir: Path | None) -> None:
    from olivine.data.hf import check_hf_dataset

    check_hf_dataset(prm, base_dir)


def _numpy_dataset(ctx: BuildContext, prm: p.NumpyDatasetParams) -> Any:
    from olivine.data.datasets import ArrayDataset, load_arrays

    arrays = load_arrays(prm.data_files, ctx.base_dir)
    label_name = prm.label_name
    if label_name is not None and label_name not in arrays:
        if "label_name" in prm.model_fields_set:
            raise DataError(f"label array '{label_name}' not found (arrays: {', '.join(arrays)})")
        label_name = None
    names = prm.input_names or [n for n in arrays if n != label_name]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"input arrays {missing} not found (arrays: {', '.join(arrays)})")
    stop = prm.max_samples
    labels = arrays[label_name][:stop] if label_name else None
    return ArrayDataset({n: arrays[n][:stop] for n in names}, labels)


def _raw_dataset(ctx: BuildContext, prm: p.RawDatasetParams) -> Any:
    from olivine.data.datasets import RawDataset

    args = prm.model_dump()
    args["data_dir"] = resolve_path(prm.data_dir, ctx.base_dir)
    return RawDataset(**args)


# ---- pre_process_data -------------------------------------------------------------------------------


def _identity_pre(ctx: BuildContext, dataset: Any, prm: p.TaskOnlyParams) -> Any:
    return dataset


def _tokenize(ctx: BuildContext, dataset: Any, prm: p.TokenizerPreProcessParams) -> Any:
    from olivine.data.hf import tokenize_rows

    try:
        # Only the rows kept: a Hub dataset may be large, or endless when streamed.
        rows = [dict(row) for row in itertools.islice(dataset, prm.max_samples)]
    except (TypeError, ValueError) as exc:
        raise DataError(f"tokenizing needs a dataset of rows (mappings column -> value): {exc}") from exc
    return tokenize_rows(rows, prm, tokenizer_path=ctx.tokenizer_path, base_dir=ctx.base_dir)


def _text_generation(ctx: BuildContext, dataset: Any, prm: Any) -> Any:
    from olivine.data.text_generation import text_generation_rows

    try:
        rows = [dict(row) for row in dataset]
    except (TypeError, ValueError) as exc:
        raise DataError(f"text generation needs a dataset of rows (mappings column -> value): {exc}") from exc
    return text_generation_rows(rows, prm, tokenizer_path=ctx.tokenizer_path, base_dir=ctx.base_dir)


# ---- post_process_data (output: one array, or a mapping output name -> array) --------------------------


def _identity_post(output: Any, prm: p.TaskOnlyParams) -> Any:
    return output


def _logits_of(output: Any, *keys: str) -> Any:
    if isinstance(output, dict):
        for key in keys:
            if key in output:
                return output[key]
        return next(iter(output.values()))
    return output


def _argmax_post(axis: int) -> Callable[[Any, p.TaskOnlyParams], Any]:
    def post(output: Any, prm: p.TaskOnlyParams) -> Any:
        import numpy as np

        return np.argmax(np.asarray(_logits_of(output, "logits")), axis=axis)

    return post


def _text_generation_post(output: Any, prm: p.TaskOnlyParams) -> Any:
    return _logits_of(output, "logits", "last_hidden_state")


# ---- dataloader -------------------------------------------------------------------------------------


def _default_dataloader(ctx: BuildContext, dataset: Any, prm: p.DefaultDataloaderParams) -> DataLoader:
    from olivine.data.loader import batching_loader

    return batching_loader(
        dataset,
        batch_size=prm.batch_size,
        drop_last=prm.drop_last,
        shuffle=prm.shuffle,
        input_names=ctx.model_inputs,
    )


def _no_auto_batch(ctx: BuildContext, dataset: Any, prm: p.NoAutoBatchDataloaderParams) -> DataLoader:
    from olivine.data.loader import unbatched_loader

    return unbatched_loader(dataset, input_names=ctx.model_inputs)


_IDENTITY_PRE = Builtin(_identity_pre, p.TaskOnlyParams)
_IDENTITY_POST = Builtin(_identity_post, p.TaskOnlyParams)

BUILTINS: dict[ComponentKind, dict[str, Builtin]] = {
    "load_dataset": {
        "dummy_dataset": Builtin(_dummy, p.DummyDatasetParams),
        "transformers_dummy_dataset": Builtin(_token_dummy, p.TransformersDummyParams),
        "transformers_prompt_dummy_dataset": Builtin(_token_dummy, p.TransformersPromptDummyParams),
        "transformers_token_dummy_dataset": Builtin(_token_dummy, p.TransformersTokenDummyParams),
        "local_dataset": Builtin(_no_dataset, p.PlaceholderDatasetParams),
        "simple_dataset": Builtin(_no_dataset, p.PlaceholderDatasetParams),
        "huggingface_dataset": Builtin(_hf_dataset, p.HuggingfaceDatasetParams, _check_hf_dataset),
        "numpy_dataset": Builtin(_numpy_dataset, p.NumpyDatasetParams),
        "raw_dataset": Builtin(_raw_dataset, p.RawDatasetParams),
    },
    "pre_process_data": {
        "pre_process": _IDENTITY_PRE,
        "default_pre_process_data": _IDENTITY_PRE,
        "skip_pre_process": _IDENTITY_PRE,
        "huggingface_pre_process": Builtin(_tokenize, p.HuggingfacePreProcessParams),
        "tokenizer_pre_process": Builtin(_tokenize, p.TokenizerPreProcessParams),
        "text_generation_huggingface_pre_process": Builtin(
            _text_generation, TextGenerationPreProcessParams, check_text_generation
        ),
    },
    "post_process_data": {
        "post_process": _IDENTITY_POST,
        "default_post_process_data": _IDENTITY_POST,
        "skip_post_process": _IDENTITY_POST,
        "text_classification_post_process": Builtin(_argmax_post(1), p.TaskOnlyParams),
        "ner_post_process": Builtin(_argmax_post(-1), p.TaskOnlyParams),
        "text_generation_post_process": Builtin(_text_generation_post, p.TaskOnlyParams),
    },
    "dataloader": {
        "default_dataloader": Builtin(_default_dataloader, p.DefaultDataloaderParams),
        "no_auto_batch_dataloader": Builtin(_no_auto_batch, p.NoAutoBatchDataloaderParams),
    },
}

#: Olive components Olivine knows of but does not provide (a clearer error than "unknown").
OLIVE_UNSUPPORTED = frozenset(
    {
        "default_load_dataset",
        "image_folder_dataset",
        "ner_huggingface_preprocess",
        "audio_classification_pre_process",
        "speech_transcription_pre_process",
        "vision_vqa_pre_process",
        "image_lora_preprocess",
        "dataloader_with_ignored_batch_fields",
        "vision_vqa_dataloader",
        "default_calibration_dataloader",
    }
)

_COMMON: dict[ComponentKind, str | None] = {
    "load_dataset": None,  # Olive's default (local_dataset) loads nothing: DataContainer must name one
    "pre_process_data": "default_pre_process_data",
    "post_process_data": "default_post_process_data",
    "dataloader": "default_dataloader",
}

CONTAINERS: dict[str, Container] = {
    c.name.lower(): c
    for c in (
        Container("DataContainer", dict(_COMMON)),
        Container(
            "DummyDataContainer",
            {**_COMMON, "load_dataset": "dummy_dataset", "dataloader": "no_auto_batch_dataloader"},
        ),
        Container(
            "TransformersDummyDataContainer", {**_COMMON, "load_dataset": "transformers_dummy_dataset"}
        ),
        Container(
            "TransformersTokenDummyDataContainer",
            {**_COMMON, "load_dataset": "transformers_token_dummy_dataset"},
        ),
        Container(
            "TransformersPromptDummyDataContainer",
            {**_COMMON, "load_dataset": "transformers_prompt_dummy_dataset"},
        ),
        Container(
            "HuggingfaceContainer",
            {**_COMMON, "load_dataset": "huggingface_dataset", "pre_process_data": "huggingface_pre_process"},
            task_components={
                "feature-extraction": {"pre_process_data": "tokenizer_pre_process"},
                "text-classification": {"post_process_data": "text_classification_post_process"},
                "ner": {
                    "pre_process_data": "ner_huggingface_preprocess",
                    "post_process_data": "ner_post_process",
                },
                "text-generation": {
                    "pre_process_data": "text_generation_huggingface_pre_process",
                    "post_process_data": "text_generation_post_process",
                },
            },
        ),
        Container(
            "RawDataContainer",
            {**_COMMON, "load_dataset": "raw_dataset", "dataloader": "no_auto_batch_dataloader"},
        ),
    )
}
