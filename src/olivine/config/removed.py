"""Keys Olive itself removed: the error says which Olive versions had the key and what replaced it. Also
keys Olive 0.13 has that Olivine does not implement: the error says what the key does in Olive.

A "did you mean" guess is wrong for these (``hf_config`` is not a typo of ``io_config``): a user with a
config written for an old Olive needs to hear that the format moved on. Versions were read from Olive's
git tags (the first release without the key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RemovedKey:
    key: str
    #: Matches the dotted path of the mapping that held the key ("" for the top level).
    where: str
    removed_in: str
    successor: str | None = None

    def message(self) -> str:
        text = f"an old Olive key, removed in Olive {self.removed_in}"
        return f"{text}; use {self.successor}" if self.successor else text


_METRIC = r"^(evaluators\.[^.]+|engine\.evaluator)\.metrics\.\d+"
_USER_CONFIG = _METRIC + r"\.user_config"
_LEGACY_METRIC = "sub_types: [{name, priority, goal, higher_is_better}]"
_LEGACY_DATA = "a data_config (a DataContainer whose user_script registers the dataloader)"

REMOVED_KEYS: tuple[RemovedKey, ...] = (
    RemovedKey("pass_flows", r"^$", "0.9.3", "'passes' (a list of alternatives under one name is searched)"),
    RemovedKey("auto_optimizer_config", r"^$", "0.9.3", "'passes' listing the passes to run"),
    RemovedKey("hf_config", r"^input_model$", "0.7", "type: HfModel with model_path and task"),
    RemovedKey("model_storage_kind", r"^input_model$", "0.3", "model_path (a file or a folder)"),
    RemovedKey("is_file", r"^input_model$", "0.3", "model_path (a file or a folder)"),
    RemovedKey("generative", r"^input_model$", "0.9.2"),
    RemovedKey("params_config", r"^data_configs\.\d+$", "0.7", "the components' own params"),
    RemovedKey("dataloader_func", _USER_CONFIG, "0.7", _LEGACY_DATA),
    RemovedKey("post_processing_func", _USER_CONFIG, "0.7", "data_config.post_process_data_config"),
    RemovedKey("input_names", _USER_CONFIG, "0.7", "a data_config (e.g. DummyDataContainer)"),
    RemovedKey("input_shapes", _USER_CONFIG, "0.7", "a data_config (e.g. DummyDataContainer)"),
    RemovedKey("input_types", _USER_CONFIG, "0.7", "a data_config (e.g. DummyDataContainer)"),
    RemovedKey("func_kwargs", _USER_CONFIG, "0.7", "evaluate_func_kwargs / metric_func_kwargs"),
    RemovedKey("sub_type", _METRIC + "$", "0.2.1", _LEGACY_METRIC),
    RemovedKey("priority_rank", _METRIC + "$", "0.2.1", _LEGACY_METRIC),
    RemovedKey("goal", _METRIC + "$", "0.2.1", _LEGACY_METRIC),
    RemovedKey("higher_is_better", _METRIC + "$", "0.2.1", _LEGACY_METRIC),
)


def removed_key(path: str) -> RemovedKey | None:
    """The removed key that the dotted ``path`` of an unknown key names, if it is one."""
    parent, _, key = path.rpartition(".")
    for entry in REMOVED_KEYS:
        if entry.key == key and re.search(entry.where, parent):
            return entry
    return None


@dataclass(frozen=True)
class OliveOnlyKey:
    """A key Olive 0.13 accepts and Olivine does not implement (not a typo: no "did you mean")."""

    key: str
    where: str
    what: str

    def message(self) -> str:
        return f"Olive 0.13's key ({self.what}) is not supported by Olivine yet"


_MODEL = r"^input_model$"

OLIVE_ONLY_KEYS: tuple[OliveOnlyKey, ...] = (
    OliveOnlyKey("test_model_path", _MODEL, "a persisted lightweight test model of an HfModel"),
    OliveOnlyKey("test_model_config", _MODEL, "config overrides for a lightweight random HfModel"),
    OliveOnlyKey(
        "external_initializers_file_name", _MODEL, "an ONNXModel's initializers kept in a separate .npz"
    ),
    OliveOnlyKey("constant_inputs_file_name", _MODEL, "an ONNXModel's constant inputs kept in a .npz"),
)


def olive_only_key(path: str) -> OliveOnlyKey | None:
    """The Olive 0.13 key Olivine lacks that the dotted ``path`` of an unknown key names, if it is one."""
    parent, _, key = path.rpartition(".")
    for entry in OLIVE_ONLY_KEYS:
        if entry.key == key and re.search(entry.where, parent):
            return entry
    return None
