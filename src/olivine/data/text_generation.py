"""Olive's ``text_generation_huggingface_pre_process`` (the ``HuggingfaceContainer`` component for
``task: text-generation``) on local rows, with Olive's parameter names and defaults
(``olive/data/component/text_generation.py``).

The text of a row comes from ``chat_template`` (the tokenizer's chat template over ``message_col``), else
``text_formatting_func`` (a function of the component's own ``user_script``, called with the row's dict;
Olive requires that ``user_script`` when the function is named), else ``text_template`` (a ``str.format``
template over the row's columns), else ``text_cols`` joined by a space (default ``["text"]``);
``add_special_tokens`` wraps it in the tokenizer's BOS/EOS tokens. Strategies:

- ``join`` (default): every text joined with ``joiner`` and cut into non-overlapping ``max_seq_len`` blocks;
- ``join-sliding-window``: blocks every ``stride`` tokens; the first ``max_seq_len - stride`` tokens of a
  block are context (label -100);
- ``join-random``: ``max_samples`` blocks starting at random rows (``random_seed``);
- ``line-by-line``: each text one sequence, truncated (and padded to ``max_seq_len`` with
  ``pad_to_max_len``); ``line-by-line-random``: ``max_samples`` random rows.

Each sample is ``{"input_ids", "attention_mask"}`` (without ``use_attention_mask``: ``input_ids`` only) and
its label the input ids with padding and context set to -100, as in Olive.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from olivine.data.params import ComponentParams
from olivine.errors import ConfigError, DataError

if TYPE_CHECKING:  # numpy and the datasets when rows are built: validating a config needs neither
    import numpy as np

    from olivine.data.datasets import SampleListDataset

    _Block = tuple[np.ndarray, np.ndarray, int]  # input ids, attention mask, context length

IGNORE_INDEX = -100
Strategy = Literal["line-by-line", "line-by-line-random", "join", "join-random", "join-sliding-window"]


class TextGenerationPreProcessParams(ComponentParams):
    """Olive's ``TextGenParams`` plus the component's own ``model_name`` / ``trust_remote_code`` / ``task``.

    ``processing_batch_size`` is accepted for Olive configs (it only changes how Olive batches tokenizing).
    """

    model_name: str | None = None
    trust_remote_code: bool | None = None
    task: str | None = None
    max_samples: int | None = Field(None, ge=1)
    max_seq_len: int = Field(1024, ge=1)
    pad_to_max_len: bool = True
    padding_side: Literal["left", "right"] = "right"
    drop_short_sequences: bool = False
    use_attention_mask: bool = True
    chat_template: bool | str | None = None
    message_col: str = "messages"
    add_special_tokens: bool = True
    text_template: str | None = None
    text_cols: list[str] | str = ["text"]
    strategy: Strategy = "join"
    stride: int | None = Field(None, ge=1)
    joiner: str | None = "\n\n"
    processing_batch_size: int = Field(1024, ge=1)
    random_seed: int | None = None
    random_retries: int = Field(10, ge=1)
    text_formatting_func: str | None = None
    user_script: str | None = None
    script_dir: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TextGenerationPreProcessParams:
        # Olive's TextGenParams validators, same rules and wording.
        if self.text_formatting_func is not None and self.user_script is None:
            raise ValueError("user_script must be provided if text_formatting_func is a name string")
        if self.pad_to_max_len and self.drop_short_sequences:
            raise ValueError("pad_to_max_len and drop_short_sequences cannot both be True")
        if self.strategy == "join-sliding-window" and self.stride is None:
            raise ValueError("stride must be specified when strategy is join-sliding-window")
        if self.stride is not None and self.stride > self.max_seq_len:
            raise ValueError("stride must not exceed max_seq_len")
        if "random" in self.strategy and (self.max_samples is None or self.random_seed is None):
            raise ValueError("max_samples and random_seed must be specified when strategy is random")
        if "join" not in self.strategy and self.pad_to_max_len and not self.use_attention_mask:
            raise ValueError("pad_to_max_len is True but use_attention_mask is False")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.text_cols] if isinstance(self.text_cols, str) else list(self.text_cols)

    def formatting_func(self, base_dir: Path | None) -> Callable[[dict[str, Any]], Any] | None:
        """``text_formatting_func`` from ``user_script`` (relative paths: the config file's folder).

        Raises:
            ConfigError: the script has no callable of that name (or cannot be found or imported).
        """
        if self.text_formatting_func is None or self.user_script is None:
            return None
        from olivine.data.user_script import load_user_script

        module = load_user_script(self.user_script, self.script_dir, base_dir=base_dir)
        func = getattr(module, self.text_formatting_func, None)
        if not callable(func):
            raise ConfigError(
                f"'{self.text_formatting_func}' is not a function of user_script {self.user_script}",
                path="text_formatting_func",
            )
        return func


def check_text_generation(params: TextGenerationPreProcessParams, base_dir: Path | None) -> None:
    """At validation (--dry-run): the named ``text_formatting_func`` exists in its ``user_script``."""
    params.formatting_func(base_dir)


def text_generation_rows(
    rows: list[dict[str, Any]],
    params: TextGenerationPreProcessParams,
    *,
    tokenizer_path: str | None,
    base_dir: Path | None,
) -> SampleListDataset:
    """Tokenize ``rows`` for a causal language model as Olive's text-generation pre-processing does."""
    import numpy as np

    from olivine.data.datasets import SampleListDataset
    from olivine.data.hf import load_tokenizer

    formatting = params.formatting_func(base_dir)
    if not params.chat_template and params.text_template is None and formatting is None:
        missing = [c for c in params.columns if rows and c not in rows[0]]
        if missing:
            raise DataError(
                f"text_cols {missing} are not in the data (columns: {', '.join(rows[0])}); set text_cols "
                "(Olive's default is ['text']) or text_template"
            )
    tokenizer = load_tokenizer(params.model_name, tokenizer_path, base_dir)
    tokenizer.padding_side = params.padding_side
    if params.pad_to_max_len and "join" not in params.strategy and tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError("pad_to_max_len needs a tokenizer with a pad (or eos) token; this one has none")
        tokenizer.pad_token = tokenizer.eos_token
    texts = [t for t in (_text(row, params, tokenizer, formatting) for row in rows) if t]
    if "join" in params.strategy:
        blocks = _join(texts, params, tokenizer)
    else:
        blocks = _lines(texts, params, tokenizer)
    if params.max_samples is not None:
        blocks = blocks[: params.max_samples]
    if not blocks:
        raise DataError(
            f"the text-generation pre-processing produced no sequence of max_seq_len {params.max_seq_len} "
            f"from {len(texts)} text(s); lower max_seq_len or give more text"
        )
    samples = []
    for ids, mask, context in blocks:
        labels = np.where(mask == 1, ids, IGNORE_INDEX)
        labels[:context] = IGNORE_INDEX
        inputs = {"input_ids": ids}
        if params.use_attention_mask:
            inputs["attention_mask"] = mask
        samples.append((inputs, labels))
    return SampleListDataset(samples)


def _text(
    row: dict[str, Any],
    params: TextGenerationPreProcessParams,
    tokenizer: Any,
    formatting: Callable[[dict[str, Any]], Any] | None = None,
) -> str:
    try:
        if params.chat_template:
            template = params.chat_template if isinstance(params.chat_template, str) else None
            messages = row[params.message_col]
            text = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)
            return str(text)
        if formatting is not None:
            text = formatting(row)
            if not isinstance(text, str):
                raise DataError(
                    f"text_formatting_func '{params.text_formatting_func}' must return a string, "
                    f"not {type(text).__name__}"
                )
        elif params.text_template is not None:
            text = params.text_template.format(**row)
        else:
            text = " ".join(str(row[c]) for c in params.columns)
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError(f"cannot build the text of a row: {type(exc).__name__}: {exc}") from exc
    if params.add_special_tokens:  # Olive's "{bos} {text} {eos}" (a token the tokenizer lacks is left out)
        text = " ".join(t for t in (tokenizer.bos_token, text, tokenizer.eos_token) if t)
    return text


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def _join(texts: list[str], params: TextGenerationPreProcessParams, tokenizer: Any) -> list[_Block]:
    joiner = _ids(tokenizer, params.joiner) if params.joiner else []
    size = params.max_seq_len
    blocks: list[_Block] = []
    if params.strategy == "join-random":
        rng = random.Random(params.random_seed)
        cache: dict[int, list[int]] = {}
        for _ in range(params.max_samples or 0):
            for _retry in range(params.random_retries):
                joined: list[int] = []
                for i in range(rng.randint(0, len(texts) - 1), len(texts)):
                    joined += cache.setdefault(i, _ids(tokenizer, texts[i])) + joiner
                    if len(joined) >= size:
                        break
                if len(joined) >= size:
                    blocks.append(_block(joined[:size], context=0))
                    break
        return blocks
    joined = [token for text in texts for token in _ids(tokenizer, text) + joiner]
    step, context = size, 0
    if params.strategy == "join-sliding-window" and params.stride:
        step, context = params.stride, size - params.stride
    # Olive's range(0, len - max_seq_len, step): a block always has max_seq_len tokens.
    for begin in range(0, len(joined) - size, step):
        blocks.append(_block(joined[begin : begin + size], context=context))
    return blocks


def _lines(texts: list[str], params: TextGenerationPreProcessParams, tokenizer: Any) -> list[_Block]:
    if params.strategy == "line-by-line-random":
        rng = random.Random(params.random_seed)
        picked = [texts[rng.randint(0, len(texts) - 1)] for _ in range(params.max_samples or 0)]
    else:
        picked = texts
    encoded = tokenizer(
        picked,
        max_length=params.max_seq_len,
        truncation=True,
        padding="max_length" if params.pad_to_max_len else False,
        add_special_tokens=False,
    )
    import numpy as np

    blocks = []
    for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True):
        if params.drop_short_sequences and len(ids) < params.max_seq_len:
            continue
        blocks.append((np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.int64), 0))
    return blocks


def _block(ids: list[int], *, context: int) -> _Block:
    import numpy as np

    array = np.asarray(ids, dtype=np.int64)
    return array, np.ones_like(array), context
