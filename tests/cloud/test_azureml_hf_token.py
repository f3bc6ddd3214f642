"""``hf_token`` of an AzureML system, as Olive had it: the job carries only the Key Vault's *name*
(``HF_LOGIN``, ``KEYVAULT_NAME``); the worker reads secret ``hf-token`` from the vault at run time with
the real azure-keyvault-secrets client. Key Vault cannot be reached from here: a small HTTP server on
127.0.0.1 plays it (the vault's bearer challenge, then the secret), which is the one stand-in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from olivine import keyvault
from olivine.errors import HostError

pytestmark = pytest.mark.azure

TOKEN = "hf_" + "Q" * 34  # the shape of a Hugging Face token


class _FakeVault(BaseHTTPRequestHandler):
    """GET /secrets/<name>: 401 with a bearer challenge without a token, the secret with one."""

    secrets: dict[str, str] = {}
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen.append((self.path, auth))
        if not auth.startswith("Bearer "):
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                'Bearer authorization="https://login.microsoftonline.com/tenant", '
                'resource="https://vault.azure.net"',
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if name not in self.secrets:
            body = json.dumps({"error": {"code": "SecretNotFound", "message": f"{name} not found"}})
            self._reply(404, body)
            return
        host = self.headers["Host"]
        self._reply(200, json.dumps({"value": self.secrets[name], "id": f"http://{host}/secrets/{name}/v1"}))

    def _reply(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("test-access-token", int(time.time()) + 3600)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (the Key Vault client speaks TLS only)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "vault.crt", folder / "vault.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``(https URL, CA file)`` of a fake vault on 127.0.0.1 holding secret ``hf-token``."""
    import ssl

    _FakeVault.secrets = {"hf-token": TOKEN}
    _FakeVault.seen = []
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVault)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()


def test_read_secret_answers_the_vault_challenge_and_returns_the_value(vault: tuple[str, Path]) -> None:
    url, ca = vault
    value = keyvault.read_secret(
        url, "hf-token", _Credential(), verify_challenge_resource=False, connection_verify=str(ca)
    )
    assert value == TOKEN
    paths = [p for p, _ in _FakeVault.seen]
    assert all(p.startswith("/secrets/hf-token") for p in paths)
    assert _FakeVault.seen[-1][1] == "Bearer test-access-token"


def test_read_secret_missing_is_one_line_without_the_sdk_dump(vault: tuple[str, Path]) -> None:
    url, ca = vault
    with pytest.raises(HostError) as info:
        keyvault.read_secret(
            url, "nope", _Credential(), verify_challenge_resource=False, connection_verify=str(ca)
        )
    message = str(info.value)
    assert "secret 'nope'" in message and url in message and "\n" not in message


def test_hf_login_reads_hf_token_from_the_named_vault_into_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(keyvault, "read_secret", lambda url, name, cred: asked.append((url, name)) or TOKEN)
    env = {"HF_LOGIN": "1", "KEYVAULT_NAME": "team-kv"}
    assert keyvault.hf_login_from_keyvault(env, credential=_Credential()) == TOKEN
    assert asked == [("https://team-kv.vault.azure.net/", "hf-token")]  # Olive's vault URL and secret
    assert env["HF_TOKEN"] == TOKEN
    assert keyvault.hf_login_from_keyvault({"PATH": "/bin"}) is None  # not asked: nothing read


def test_hf_login_without_vault_name_is_a_clear_error() -> None:
    with pytest.raises(HostError, match=r"KEYVAULT_NAME.*keyvault_name"):
        keyvault.hf_login_from_keyvault({"HF_LOGIN": "1"}, credential=_Credential())


def _aml_config(tmp_path: Path, **client: Any) -> Path:
    from tiny_models import write_onnx_mlp

    cfg = {
        "workflow_id": "hf_mlp",
        "input_model": write_onnx_mlp(tmp_path / "mlp"),
        "systems": {
            "aml": {
                "type": "AzureML",
                "aml_compute": "cpu-cluster",
                "aml_environment_config": {"name": "olivine-env", "version": "3"},
                "hf_token": True,
            }
        },
        "azureml_client": {"subscription_id": "s", "resource_group": "rg", "workspace_name": "ws", **client},
        "passes": {"quantize": {"type": "OnnxDynamicQuantization"}},
        "workflow_host": "aml",
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_azureml_hf_token_without_keyvault_is_one_config_error(tmp_path: Path) -> None:
    from olivine import api
    from olivine.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        api.submit(api.load(_aml_config(tmp_path)), dry_run=True)
    message = str(info.value)
    assert "systems.aml.hf_token" in message and "keyvault_name" in message and "\n" not in message


def test_azureml_hf_token_job_carries_the_vault_name_and_the_worker_reads_the_token(
    azure_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit (Azure ML replaced by keeping the built job), then run the worker on the job folder with
    the job's environment, exporting to Azurite: the token is read from the vault the job names, is in
    the worker's environment for the workflow, and is nowhere in the job or the export."""
    import os

    import yaml

    from cloud_servers import CONTAINER, fresh_prefix
    from olivine import api
    from olivine.datastores import Datastore
    from olivine.hosts.azureml import AzureMLHost
    from olivine.hosts.azureml_job import job_yaml
    from olivine.jobs.worker import run_job

    prefix = fresh_prefix()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OLIVINE_HOME", str(home))
    (home / "hosts.yaml").write_text(
        yaml.safe_dump({"datastores": {"workspaceblobstore": {"url": f"az://{CONTAINER}/{prefix}"}}})
    )
    sent: list[Any] = []
    monkeypatch.setattr(AzureMLHost, "_create", lambda self, job: sent.append(job) or job)
    submission = api.submit(api.load(_aml_config(tmp_path, keyvault_name="team-kv")))
    assert submission.job is not None and len(sent) == 1
    job = sent[0]
    assert job.environment_variables["HF_LOGIN"] == "1"
    assert job.environment_variables["KEYVAULT_NAME"] == "team-kv"
    assert TOKEN not in job_yaml(job, {"job": Path(job.inputs["job"].path)})

    asked: list[str] = []
    monkeypatch.setattr(keyvault, "read_secret", lambda url, name, cred: asked.append(url) or TOKEN)
    monkeypatch.setattr(keyvault, "_default_credential", _Credential)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for name, value in job.environment_variables.items():
        monkeypatch.setenv(name, value)
    job_dir = Path(job.inputs["job"].path)
    state = run_job(job_dir, log_file=job_dir / "job.log")  # as the job's command: --log-file
    assert state.value == "SUCCEEDED"
    assert asked == ["https://team-kv.vault.azure.net/"]
    assert os.environ["HF_TOKEN"] == TOKEN
    ds = Datastore.from_url(f"az://{CONTAINER}/{prefix}")
    files = ds.walk_files()
    assert any(rel.endswith("/manifest.json") for rel, _ in files)
    for rel, _ in files:
        assert TOKEN.encode() not in ds.read_bytes(rel), rel
    for path in Path(job.inputs["job"].path).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
