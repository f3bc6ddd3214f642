"""Parameter models of the built-in data components (Olive's parameter names and defaults).

Each model forbids unknown keys, so a misspelled parameter is a :class:`~olivine.errors.ConfigError` when the
workflow is resolved. Parameters Olive accepts that cannot change Olivine's result (``trust_remote_code`` for
local files, ``num_workers``) are accepted and documented as having no effect.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ComponentParams(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)


class TaskOnlyParams(ComponentParams):
    """Pass-through components; Olive puts ``task`` here to pick the container's task-specific components."""

    task: str | None = None


# ---- load_dataset ---------------------------------------------------------------------------------------


class DummyDatasetParams(ComponentParams):
    #: Each dimension >= 1: a 0 made empty inputs (calibration to scale 1.0, timing of nothing).
    input_shapes: list[list[Annotated[int, Field(ge=1)]]]
    input_names: list[str] | None = None
    input_types: list[str] | None = None
    max_samples: int = Field(32, ge=1)


class TransformersDummyParams(ComponentParams):
    """Olive's ``transformers_dummy_dataset``; Olivine produces encoder-style token inputs.

    ``input_names`` (Olivine's own) picks which of ``input_ids``, ``attention_mask``, ``token_type_ids``,
    ``position_ids`` to produce; by default the model's own input names when they are known, else the first
    three. ``vocab_size`` (Olivine's own) bounds the random token ids; by default it is read from the
    ``config.json`` beside the tokenizer (``model_name`` or the input model), else 100. A model with past
    key/value inputs (``ort_past_key_name`` / ``ort_past_value_name``, ``<id>`` the layer) gets a random cache
    of ``past_seq_len`` tokens shaped from that ``config.json``, an attention mask over past and new tokens,
    and positions after the past.
    """

    data_dir: str | None = None
    model_name: str | None = None
    seq_len: int = Field(128, ge=1)
    past_seq_len: int = Field(128, ge=0)
    max_seq_len: int = 1024
    model_framework: str = "ONNX"
    use_fp16: bool = False
    shared_kv: bool = False
    generative: bool = False
    ort_past_key_name: str = "past_key_values.<id>.key"
    ort_past_value_name: str = "past_key_values.<id>.value"
    trust_remote_code: bool | None = None
    max_samples: int = Field(32, ge=1)
    use_step: bool = False
    ignore_input_fields: list[str] | None = None
    input_names: list[str] | None = None
    vocab_size: int | None = Field(None, ge=2)


class TransformersTokenDummyParams(TransformersDummyParams):
    """Olive's token-generation dummy data: one new token after a KV cache of ``past_seq_len`` tokens (a
    model without cache inputs gets the ``seq_len`` tokens only)."""

    seq_len: int = Field(1, ge=1)
    past_seq_len: int = Field(8, ge=0)
    max_seq_len: int = 2048


class PlaceholderDatasetParams(ComponentParams):
    """Olive's ``local_dataset`` / ``simple_dataset``: no dataset (the user's dataloader makes the data);
    Olive accepts and ignores any parameter."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), frozen=True)


class TransformersPromptDummyParams(TransformersDummyParams):
    seq_len: int = Field(8, ge=1)
    past_seq_len: int = Field(0, ge=0)
    max_seq_len: int = 2048


class HuggingfaceDatasetParams(ComponentParams):
    """Olive's ``huggingface_dataset`` over local files: ``data_name`` is ``csv``, ``json`` or ``parquet``.

    ``data_files`` is a path, a list of paths, or a mapping split -> path(s); a path or list is the
    ``train`` split (as in Hugging Face ``datasets``). ``split`` may slice: ``train[:100]``, ``train[10%:]``.
    """

    data_name: str
    subset: str | None = None
    data_dir: str | None = None
    split: str | None = "validation"
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    col_filters: dict[str, str | int | float] | None = None
    field: str | None = None
    trust_remote_code: bool | None = None
    #: Hugging Face ``datasets`` reads lazily when streaming; local files give the same rows either way.
    streaming: bool = False


class NumpyDatasetParams(ComponentParams):
    """Olivine's ``numpy_dataset``: arrays from ``.npz`` files, or a mapping array name -> ``.npy`` file.

    The first axis of every array is the sample axis; several ``.npz`` files are concatenated along it.
    ``input_names`` defaults to every array except the label; ``label_name`` (default ``label``) is used
    when present (an explicitly named label array must exist).
    """

    data_files: str | list[str] | dict[str, str]
    input_names: list[str] | None = None
    label_name: str | None = "label"
    max_samples: int | None = Field(None, ge=1)


class RawDatasetParams(ComponentParams):
    data_dir: str
    input_names: list[str]
    input_shapes: list[list[int]]
    input_types: list[str] | None = None
    input_dirs: list[str] | None = None
    input_suffix: str | None = None
    input_order_file: str | None = None
    annotations_file: str | None = None


# ---- pre_process_data -----------------------------------------------------------------------------------


class TokenizerPreProcessParams(ComponentParams):
    """Olive's ``tokenizer_pre_process``: tokenize ``input_cols`` with the model's tokenizer.

    ``model_name`` is a local tokenizer folder; by default the input model's folder. ``batched`` is
    accepted for Olive configs (Olivine always tokenizes all rows at once).
    """

    model_name: str | None = None
    input_cols: list[str] = Field(min_length=1)
    #: Olive's tokenizer_pre_process swallows a label_col (no labels); Olivine keeps that column's labels.
    label_col: str | None = None
    max_samples: int | None = Field(None, ge=1)
    trust_remote_code: bool | None = None
    padding: bool | str = True
    truncation: bool | str = True
    max_length: int | None = Field(None, ge=1)
    is_split_into_words: bool = False
    add_special_tokens: bool = True
    batched: bool = True
    task: str | None = None
    # huggingface_pre_process's; Olive's tokenizer_pre_process swallows them (**kwargs), and a config
    # becomes tokenizer_pre_process when Olive fills in a feature-extraction task: honoured here.
    align_labels: bool = False
    model_config_path: str | None = None


class HuggingfacePreProcessParams(TokenizerPreProcessParams):
    label_col: str | None = "label"


# ---- dataloader -----------------------------------------------------------------------------------------


class DefaultDataloaderParams(ComponentParams):
    """``shuffle`` uses a fixed seed (0) so evaluations stay comparable; ``num_workers`` has no effect."""

    batch_size: int = Field(1, ge=1)
    drop_last: bool = False
    shuffle: bool = False
    num_workers: int = Field(0, ge=0)


class NoAutoBatchDataloaderParams(ComponentParams):
    """The dataset's samples are already batches; Olive drops ``batch_size`` here and so do we."""

    batch_size: int | None = None
