"""Hugging Face tasks (Olive's names): which auto class loads the model and what its inputs look like.

Olive's default task, when an ``HfModel`` has none, is ``text-generation-with-past`` (``DEFAULT_HF_TASK``
in ``olive/common/constants.py`` since 0.7, when ``HfModel`` appeared). Olive exports such a model with
its KV cache as inputs and outputs, and so does Olivine (:mod:`olivine.passes.kv_export`).
``text2text-generation[-with-past]`` (encoder-decoder models; Olive's ``seq2seq-lm`` synonyms too) is
refused at validation whenever the workflow has to load the model (a conversion, or evaluating the input
model). Passes that read the model folder
themselves (ModelBuilder) do not care.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputKind = Literal["text", "image", "audio", "text+image"]


#: Olive's task templates' text inputs (olive/assets/io_configs/tasks.yaml): what a model without tokenizer
#: files is fed (an encoder's token_type_ids only where its forward takes them).
ENCODER_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: A causal LM's: no token_type_ids, even where forward accepts them (GPT-2's); its tokenizer gives none.
DECODER_TEXT_INPUTS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class TaskSpec:
    auto_class: str
    inputs: InputKind = "text"
    #: The text inputs when the model folder has no tokenizer to name them.
    text_inputs: tuple[str, ...] = ENCODER_TEXT_INPUTS


#: Task (and the synonyms Olive's older versions used) -> how to load it and feed it.
TASKS: dict[str, TaskSpec] = {
    "feature-extraction": TaskSpec("AutoModel"),
    "default": TaskSpec("AutoModel"),
    "text-classification": TaskSpec("AutoModelForSequenceClassification"),
    "sequence-classification": TaskSpec("AutoModelForSequenceClassification"),
    "fill-mask": TaskSpec("AutoModelForMaskedLM"),
    "masked-lm": TaskSpec("AutoModelForMaskedLM"),
    "token-classification": TaskSpec("AutoModelForTokenClassification"),
    "question-answering": TaskSpec("AutoModelForQuestionAnswering"),
    "multiple-choice": TaskSpec("AutoModelForMultipleChoice"),
    # Exported without the KV cache: input_ids, attention_mask -> logits (use_cache off).
    "text-generation": TaskSpec("AutoModelForCausalLM", text_inputs=DECODER_TEXT_INPUTS),
    "causal-lm": TaskSpec("AutoModelForCausalLM", text_inputs=DECODER_TEXT_INPUTS),
    # Exported with the KV cache (past_key_values.* in, present.* out), as Olive does.
    "text-generation-with-past": TaskSpec("AutoModelForCausalLM", text_inputs=DECODER_TEXT_INPUTS),
    "causal-lm-with-past": TaskSpec("AutoModelForCausalLM", text_inputs=DECODER_TEXT_INPUTS),
    "image-classification": TaskSpec("AutoModelForImageClassification", "image"),
    "zero-shot-image-classification": TaskSpec("AutoModelForZeroShotImageClassification", "text+image"),
    "audio-classification": TaskSpec("AutoModelForAudioClassification", "audio"),
}

#: The named output dimensions beyond batch and sequence of Olive's task templates
#: (olive/assets/io_configs/tasks.yaml): what its TorchScript export writes as the dimensions' names.
_CLASSES = {"logits": {1: "num_labels"}}
_TOKENS = {"logits": {2: "num_labels"}}
_VOCAB = {"logits": {2: "vocab_size"}}
_HIDDEN = {"last_hidden_state": {2: "hidden_size"}}
OUTPUT_AXES: dict[str, dict[str, dict[int, str]]] = {
    "feature-extraction": _HIDDEN,
    "default": _HIDDEN,
    "text-classification": _CLASSES,
    "sequence-classification": _CLASSES,
    "image-classification": _CLASSES,
    "token-classification": _TOKENS,
    "fill-mask": _VOCAB,
    "masked-lm": _VOCAB,
    "text-generation": _VOCAB,
    "causal-lm": _VOCAB,
}

#: Encoder-decoder tasks and Olive's synonyms for them (olive/common/hf/io_config/tasks.py).
_ENCODER_DECODER = (
    "text2text-generation-with-past",
    "text2text-generation",
    "seq2seq-lm-with-past",
    "seq2seq-lm",
)


def unsupported_reason(task: str, *, given: bool) -> str | None:
    """Why Olivine cannot load/export a model of ``task`` (``None`` when it can).

    Args:
        task: the ``HfModel.task`` value.
        given: whether the config set it (else it is Olive's default, and the message says so).
    """
    if task in TASKS:
        return None
    origin = f"task '{task}'" if given else f"no 'task' means Olive's default '{task}', which"
    if task in _ENCODER_DECODER:
        # Olive 0.13 exports an encoder-decoder model as one graph (input_ids, attention_mask,
        # decoder_input_ids, the decoder's self-attention cache -> logits, present.*); Olivine's exports
        # cover encoder-only and decoder-only models.
        cache = " with its KV cache" if "with-past" in task or task == "text2text-generation" else ""
        return (
            f"{origin} (an encoder-decoder model exported{cache}) is not supported by Olivine; "
            f"supported: {', '.join(sorted(TASKS))}"
        )
    return f"{origin} is not supported by Olivine; supported: {', '.join(sorted(TASKS))}"
