"""The Jobs REST client's token authentication (where the token comes from, the header it sends, the
errors it raises) against a stand-in HTTP server that checks the header as Ray's dashboard does; the
real clusters are in tests/on_ray/test_ray_token_auth.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from olivine.hosts.ray_jobs_api import RayAuthError, RayJobsAPI, RayRequestError, find_token

TOKEN = "plantedRAYtoken0123456789abcdef"


class _Dashboard(BaseHTTPRequestHandler):
    """Answers like Ray's token middleware: 401 without a token, 403 with a wrong one; records headers."""

    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        self.seen.append(dict(self.headers.items()))
        auth = self.headers.get("Authorization")
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/api/jobs/")
            self.end_headers()
            return
        if auth is None:
            code, body = 401, b"Unauthorized: Missing authentication token"
        elif auth != f"Bearer {TOKEN}":
            code, body = 403, b"Forbidden: Invalid authentication token"
        elif self.path == "/api/jobs/":
            code, body = 200, json.dumps([{"submission_id": "j1", "status": "RUNNING"}]).encode()
        elif self.path == "/api/jobs/j1/logs":
            code, body = 200, json.dumps({"logs": "a\nb\n"}).encode()
        elif self.path == "/api/jobs/j1/stop":
            code, body = 200, json.dumps({"stopped": True}).encode()
        else:
            code, body = 404, b"Job j2 does not exist"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[str]:
    _Dashboard.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_token_sources_in_ray_order(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(" from-default \nsecond line\n")
    path = tmp_path / "tok"
    path.write_text("\tfrom-path\n")
    assert find_token({}, home) == ("from-default", str(home / ".ray" / "auth_token"))
    assert find_token({"RAY_AUTH_TOKEN_PATH": str(path)}, home) == (
        "from-path",
        f"RAY_AUTH_TOKEN_PATH ({path})",
    )
    env = {"RAY_AUTH_TOKEN": " from-env\n", "RAY_AUTH_TOKEN_PATH": str(path)}
    assert find_token(env, home) == ("from-env", "RAY_AUTH_TOKEN")
    assert find_token({"RAY_AUTH_TOKEN": "  "}, tmp_path / "nobody") is None
    with pytest.raises(RayAuthError, match=r"RAY_AUTH_TOKEN_PATH is set but .*missing cannot be read"):
        find_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}, home)


def test_every_call_carries_the_token_in_token_mode(dashboard: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    api = RayJobsAPI(dashboard)
    assert [(j.submission_id, j.status) for j in api.list_jobs()] == [("j1", "RUNNING")]
    assert api.get_job_logs("j1") == "a\nb\n"
    assert api.stop_job("j1") is True
    with pytest.raises(RayRequestError, match="status code 404") as unknown:
        api.get_job_info("j2")
    assert unknown.value.status == 404
    assert [h.get("Authorization") for h in _Dashboard.seen] == [f"Bearer {TOKEN}"] * 4
    assert TOKEN not in repr(api)


def test_a_redirect_does_not_carry_the_token(dashboard: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    with pytest.raises(RayAuthError):
        RayJobsAPI(dashboard)._ok("GET", "/redirect")
    assert [h.get("Authorization") for h in _Dashboard.seen] == [f"Bearer {TOKEN}", None]


def test_auth_failures_are_one_clear_error_without_the_token(
    dashboard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        RayAuthError, match=r"requires token authentication .* carried no token; set RAY_AUTH_MODE"
    ):
        RayJobsAPI(dashboard).list_jobs()  # no RAY_AUTH_MODE: no header, as Ray's clients do
    monkeypatch.setenv("RAY_AUTH_MODE", "TOKEN")
    with pytest.raises(RayAuthError, match=r"no Ray authentication token was found .* ~/\.ray/auth_token"):
        RayJobsAPI(dashboard)
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN + "x")
    with pytest.raises(RayAuthError) as refused:
        RayJobsAPI(dashboard).list_jobs()
    message = str(refused.value)
    assert "refused the authentication token from RAY_AUTH_TOKEN" in message and TOKEN not in message
    assert "\n" not in message
