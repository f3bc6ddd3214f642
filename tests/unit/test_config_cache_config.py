"""Olive 0.13's ``cache_config`` / ``enable_shared_cache`` engine keys: the local cache keys are read, the
shared (Azure Blob) cache is refused with one line naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from olivine.config.loader import validate_config
from olivine.errors import ConfigError


def _base(**extra: Any) -> dict[str, Any]:
    return {"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}, **extra}


@pytest.mark.parametrize("nested", [True, False])
def test_cache_config_keys_become_the_engine_cache_keys(nested: bool) -> None:
    cache = {"cache_dir": "cc", "clean_cache": True, "clean_evaluation_cache": True, "account_name": "acct"}
    data = _base(engine={"cache_config": cache}) if nested else _base(cache_config=cache)
    engine = validate_config(data, file="cfg.json").engine
    assert (engine.cache_dir, engine.clean_cache, engine.clean_evaluation_cache) == ("cc", True, True)
    assert engine.enable_shared_cache is False


def test_enable_shared_cache_false_is_accepted_and_true_is_refused_naming_the_key() -> None:
    assert validate_config(_base(enable_shared_cache=False)).engine.enable_shared_cache is False
    for data in (_base(enable_shared_cache=True), _base(cache_config={"enable_shared_cache": True})):
        with pytest.raises(ConfigError) as info:
            validate_config(data, file="cfg.json")
        line = str(info.value)
        assert (
            line.startswith("cfg.json: engine.enable_shared_cache: Olive's shared cache") and "\n" not in line
        )


def test_unknown_cache_config_key_is_refused_with_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_base(cache_config={"cache_dirr": "x"}), file="cfg.json")
    assert "cache_config.cache_dirr: unknown key; allowed: cache_dir, clean_cache" in str(info.value)
