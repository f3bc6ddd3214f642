"""Credentials never leave through URLs, error messages or manifests."""

from __future__ import annotations

import pytest

from olivine.datastores.redact import looks_like_secret, redact_config, scrub_text, scrub_url, secret_values

SAS = "sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=AbC%2Fdef%3D"
CONN = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


def test_scrub_url_drops_userinfo_and_query() -> None:
    url = f"https://user:pw@acct.blob.core.windows.net/container/x.onnx?{SAS}#frag"
    assert scrub_url(url) == "https://acct.blob.core.windows.net/container/x.onnx"


def test_scrub_url_keeps_plain_urls_unchanged() -> None:
    for url in ("az://container/prefix", "file:///tmp/a%20b", "memory://root/x", "/plain/path"):
        assert scrub_url(url) == url


def test_scrub_text_removes_known_values_urls_and_pairs() -> None:
    text = (
        f"GET https://acct.blob.core.windows.net/c/x?{SAS} failed; conn={CONN}; "
        "options={'account_key': 'topsecretkey', 'anon': False}; extra hunter2pass"
    )
    clean = scrub_text(text, secrets=["hunter2pass"])
    for leaked in ("AbC%2Fdef", "Eby8vdM02x", "topsecretkey", "hunter2pass"):
        assert leaked not in clean
    assert "https://acct.blob.core.windows.net/c/x" in clean
    assert "'anon': False" in clean


def test_scrub_text_ignores_tiny_secret_values() -> None:
    assert scrub_text("a b c", secrets=["a"]) == "a b c"


def test_looks_like_secret_on_connection_strings_sas_and_passwords() -> None:
    assert looks_like_secret(CONN)
    assert looks_like_secret(SAS)
    assert looks_like_secret(f"https://acct.blob.core.windows.net/c?{SAS}")
    assert looks_like_secret("https://x.s3.amazonaws.com/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA")
    assert looks_like_secret("s3://AKIAXX:wJalrXUtnFEMI@bucket/key")
    for harmless in ("hello", "https://host/path", "signature", "az://c/p", "design=sig"):
        assert not looks_like_secret(harmless), harmless


def test_redact_config_drops_secrets_at_any_depth() -> None:
    config = {
        "workflow_id": "w",
        "datastores": {
            "blob": {"url": "az://models", "Account_Key": "k1", "sas-token": "t", "anon": False},
            "conn": {"url": CONN},
        },
        "systems": [{"env": {"AZURE_STORAGE_ACCOUNT_KEY": "k2", "aws_session_token": "t2"}}],
        "urls": ["az://ok", f"https://a/b?{SAS}"],
        "tokenizer": {"pad_token": "[PAD]", "cache_key": "abc"},
    }
    assert redact_config(config) == {
        "workflow_id": "w",
        "datastores": {"blob": {"url": "az://models", "anon": False}, "conn": {}},
        "systems": [{"env": {}}],
        "urls": ["az://ok"],
        "tokenizer": {"pad_token": "[PAD]", "cache_key": "abc"},
    }


def test_secret_values_collects_by_key_and_by_look() -> None:
    options = {"account_name": "dev", "account_key": "k" * 10, "nested": {"connection_string": CONN}}
    assert secret_values(options) == ["k" * 10, CONN]


def test_redact_config_drops_credential_environment_variables_by_name() -> None:
    from olivine.redaction import redact_config

    host = {
        "type": "Ray",
        "runtime_env": {
            "env_vars": {
                "HF_TOKEN": "hf_plantedTOKEN",
                "AZURE_STORAGE_KEY": "plantedKEY==",
                "MY_SERVICE_PASSWORD": "hunter2hunter2",
                "OMP_NUM_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false",
            },
            "pip": ["olivine"],
        },
        "pad_token": "[PAD]",  # a config key, not an environment variable: kept
    }
    out = redact_config(host, secrets=[])
    assert out["runtime_env"]["env_vars"] == {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    assert out["runtime_env"]["pip"] == ["olivine"] and out["pad_token"] == "[PAD]"


@pytest.mark.parametrize(
    "key", ["api_key", "apiKey", "openai_api_key", "access_token", "auth_token", "private_key", "passwd"]
)
def test_common_credential_key_spellings_are_dropped(key: str) -> None:
    """A model's metadata or a pass config with an API key was written verbatim into the run records."""
    assert redact_config({"custom_metadata": {key: "sk-AAAA-1234-5678", "owner": "team"}}) == {
        "custom_metadata": {"owner": "team"}
    }


@pytest.mark.parametrize("key", ["cache_key", "pad_token", "eos_token", "keep_io_types", "token_type_ids"])
def test_harmless_keys_with_credential_words_stay(key: str) -> None:
    assert redact_config({key: "x"}) == {key: "x"}
