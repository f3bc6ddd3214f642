"""The names Olivine itself writes in a workflow's output folder.

When ``output_dir`` names a model file (``out/model.onnx``, as Olive reads it), the model's external data
files land in that same folder; a data file with one of these names would be overwritten by Olivine's own
records (or overwrite them). Passes refuse such an ``external_data_name`` at config time, and the output
step refuses any other collision before it copies a file.
"""

from __future__ import annotations

#: Files of a Hugging Face model folder that users of the exported model need (tokenizer, config, processor).
HF_COMPANION_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.jinja",
)

#: Olivine's own records in the output folder.
RECORD_NAMES = frozenset(
    {
        "model_config.json",
        "metrics.json",
        "input_model_metrics.json",
        "run_history.txt",
        "olivine.log",
        "footprint.json",
        ".olivine-digests.json",
        "model",
        ".model.tmp",
        "report.html",
    }
)

#: Olivine's records and the Hugging Face companions it copies beside an ONNX output: no name for weights.
OUTPUT_FILE_NAMES = RECORD_NAMES | frozenset(HF_COMPANION_FILES)
