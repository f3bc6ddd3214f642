"""Credentials are scrubbed where text leaves the process: log formatters, worker streams, CLI errors."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from olivine.cli.main import main, one_line
from olivine.config.loader import validate_config
from olivine.datastores import Datastore
from olivine.errors import ConfigError
from olivine.scrubbing import Scrubber, ScrubbingFormatter, ScrubbingStream, env_secrets

ENV = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLEsessiontoken",
    "AZURE_STORAGE_KEY": "azkeyEXAMPLEbase64==",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=connKEY123==",
    "AZURE_CLIENT_SECRET": "clientSECRETvalue",
    "HF_TOKEN": "hf_EXAMPLEtokenvalue",
    "MY_SERVICE_PASSWORD": "hunter2hunter2",
    "TOKENIZERS_PARALLELISM": "false-but-long",
    "PWD": "/home/me/project",
    "PATH": "/usr/bin:/bin",
}
SECRETS = [v for k, v in ENV.items() if k not in ("TOKENIZERS_PARALLELISM", "PWD", "PATH")]


def test_env_secrets_finds_credential_variables_only() -> None:
    assert sorted(env_secrets(ENV)) == sorted(SECRETS)


def test_scrubbing_stream_scrubs_a_secret_split_across_writes() -> None:
    target = io.StringIO()
    stream = ScrubbingStream(target, Scrubber(environ=ENV))
    secret = ENV["HF_TOKEN"]
    stream.write("token is " + secret[:5])
    stream.write(secret[5:] + "\nnext ")
    stream.write("https://user:pw1234@host/x?sig=abcdef\n")
    stream.flush()
    out = target.getvalue()
    assert secret not in out and "pw1234" not in out and "abcdef" not in out
    assert out.count("\n") == 2 and "next https://host/x" in out


def test_scrubbing_formatter_scrubs_messages_and_tracebacks() -> None:
    formatter = ScrubbingFormatter("%(message)s", scrubber=Scrubber(environ=ENV))
    try:
        raise RuntimeError(f"connect failed with {ENV['AZURE_STORAGE_CONNECTION_STRING']}")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, "f", 1, "key %s", (ENV["AWS_SECRET_ACCESS_KEY"],), sys.exc_info()
        )
    text = formatter.format(record)
    assert "Traceback" in text
    for secret in SECRETS:
        assert secret not in text
    assert "connKEY123" not in text


@pytest.mark.parametrize(
    "url",
    [
        "file://user:s3cretPW@/tmp/x",
        "az://acct:s3cretPW@container/prefix",
        "az://container/prefix?sv=2024&sig=s3cretPW",
        "s3://bucket/p?X-Amz-Signature=s3cretPW",
    ],
)
def test_datastore_url_with_credentials_is_refused_without_repeating_them(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(
            {"input_model": {"type": "ONNXModel", "model_path": "m.onnx"}, "datastores": {"d": {"url": url}}},
            file="cfg.json",
        )
    assert "s3cretPW" not in str(info.value) and "datastores.d.url" in str(info.value)
    with pytest.raises(ConfigError) as opened:
        Datastore.from_url(url)
    assert "s3cretPW" not in str(opened.value)
    assert not list(tmp_path.iterdir())


def test_cli_datastore_url_with_password_is_one_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLIVINE_HOME", str(tmp_path / "home"))
    code = main(["status", "--datastore", f"file://me:s3cretPW@{tmp_path}/ds", "wf"])
    err = capsys.readouterr().err
    assert code == 2 and "s3cretPW" not in err and len(err.strip().splitlines()) == 1


def test_one_line_escapes_control_characters() -> None:
    assert one_line("a\nb\x1ec\x00") == "a\\nb\\x1ec\\x00"
    assert one_line("plain é") == "plain é"


def test_descriptor_scrubber_scrubs_native_writes_and_subprocess_output(tmp_path: Path) -> None:
    import os
    import subprocess

    from olivine.scrubbing import DescriptorScrubber

    log = tmp_path / "job.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    twin = os.dup(fd)  # two descriptors on one open file (stdout and stderr in one log): one pipe
    secret = ENV["HF_TOKEN"]
    try:
        route = DescriptorScrubber(Scrubber(environ=ENV), fds=(fd, twin))
        os.write(fd, f"first {secret[:6]}".encode())
        os.write(twin, f"{secret[6:]} end\n".encode())  # split across writes and descriptors
        subprocess.run(["echo", f"child {ENV['AWS_SECRET_ACCESS_KEY']}"], check=True, stdout=fd)
        assert route.sync()  # every complete line is in the file now (a worker exports its log next)
        assert log.read_text().splitlines() == ["first *** end", "child ***"]
        os.write(fd, b"no newline at the end " + ENV["AZURE_CLIENT_SECRET"].encode())
        route.close()
        os.write(fd, b"after close\n")  # the descriptor points at the log again
    finally:
        os.close(fd)
        os.close(twin)
    text = log.read_text()
    for value in SECRETS:
        assert value not in text
    assert text.splitlines() == ["first *** end", "child ***", "no newline at the end ***after close"]


_GIL_HOLDING_WRITER = """
import ctypes, os, sys
from olivine.scrubbing import DescriptorScrubber, Scrubber
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
scrubber = Scrubber(environ={})
route = DescriptorScrubber(scrubber, fds=(fd,))
scrubber.add(["learnt-after-start-0123"])  # e.g. the datastore's key, read once the job started
os.write(fd, b"key learnt-after-start-0123\\n")
line = b"x" * 1023 + b"\\n"
# PyDLL keeps the GIL during the call, as native code called from Python may: 1.5 MiB is more than
# the pipe holds, so a reader that needs the GIL (a thread) would never drain it.
ctypes.PyDLL(None).write(fd, line * 1536, len(line) * 1536)
route.close(timeout_s=60)
"""


def test_descriptor_scrubber_drains_native_writes_made_while_holding_the_gil(tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "out.log"
    done = subprocess.run(
        [sys.executable, "-c", _GIL_HOLDING_WRITER, str(log)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with log.open("rb") as fh:
        assert fh.readline() == b"key ***\n"  # a secret added after the start reached the pump
        assert sum(1 for _ in fh) == 1536
