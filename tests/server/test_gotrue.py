"""The embedded server's /auth/v1, through supabase-py's own auth client (supabase_auth), against
a real server process: users from `jobctl server user add`, password sign-in, refresh with
rotation, /user, logout, GoTrue's error shapes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from supabase import create_client
from supabase_auth.errors import AuthApiError

from jobctl.server.auth import Authenticator
from tests.conftest import ServerProcess

PASSWORD = "correct horse battery"


def add_user(email: str, password: str = PASSWORD, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobctl", "server", "user", "add", email, *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )


def anon_key(server: ServerProcess) -> str:
    secret = (server.config_dir / "jwt-secret").read_text().strip()
    return Authenticator("unused", secret).make_jwt(None, "anon")


def secret_of(server: ServerProcess) -> str:
    return (server.config_dir / "jwt-secret").read_text().strip()


def test_user_add_stores_a_hash_readable_by_its_owner_only(tmp_path: Path) -> None:
    done = add_user("Alice@Example.com")
    assert done.returncode == 0, done.stderr
    user_id = done.stdout.strip()
    path = Path(os.environ["JOBCTL_DATA_DIR"]) / "auth-users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    record = data["users"][user_id]
    assert record["email"] == "alice@example.com"
    assert PASSWORD not in path.read_text()
    assert record["password"].startswith("scrypt$")
    again = add_user("alice@example.com")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    short = add_user("bob@example.com", "abc")
    assert short.returncode == 2 and "shorter than 6" in short.stderr
    bad = add_user("not-an-email")
    assert bad.returncode == 2 and "not an email address" in bad.stderr


def test_password_sign_in_refresh_and_logout_with_supabase_py(make_server: object) -> None:
    server: ServerProcess = make_server(env={"JOBCTL_AUTH_ACCESS_TTL": "120"})  # type: ignore[operator]
    # Added while the server runs: seen at the next sign-in.
    user_id = add_user("alice@example.com").stdout.strip()
    sb = create_client(server.url, anon_key(server))

    with pytest.raises(AuthApiError) as wrong:
        sb.auth.sign_in_with_password({"email": "alice@example.com", "password": "wrong pass"})
    assert wrong.value.status == 400
    assert wrong.value.message == "Invalid login credentials"
    with pytest.raises(AuthApiError) as nobody:
        sb.auth.sign_in_with_password({"email": "nobody@example.com", "password": PASSWORD})
    assert nobody.value.message == "Invalid login credentials"

    signed = sb.auth.sign_in_with_password({"email": "alice@example.com", "password": PASSWORD})
    session = signed.session
    assert session is not None and signed.user is not None
    assert signed.user.id == user_id and signed.user.email == "alice@example.com"
    assert session.token_type == "bearer" and session.expires_in == 120
    claims = jwt.decode(session.access_token, secret_of(server), algorithms=["HS256"],
                        audience="authenticated")  # fmt: skip
    assert claims["sub"] == user_id and claims["role"] == "authenticated"
    assert claims["exp"] - claims["iat"] == 120
    assert session.expires_at == claims["exp"]

    # The token is one the job API takes, as that user.
    with server.client(session.access_token) as api:
        created = api.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}})
        assert created.status_code in (200, 201, 202), created.text
        assert created.json()["user_id"] == user_id

    got = sb.auth.get_user(session.access_token)
    assert got is not None and got.user.id == user_id

    first_refresh = session.refresh_token
    refreshed = sb.auth.refresh_session(first_refresh)
    assert refreshed.session is not None
    assert refreshed.session.refresh_token != first_refresh
    new_claims = jwt.decode(refreshed.session.access_token, secret_of(server),
                            algorithms=["HS256"], audience="authenticated")  # fmt: skip
    assert new_claims["sub"] == user_id
    assert new_claims["session_id"] == claims["session_id"]  # the same session goes on

    # A refresh token is used once.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        reused = http.post(
            "/auth/v1/token", params={"grant_type": "refresh_token"},
            json={"refresh_token": first_refresh},
        )  # fmt: skip
        assert reused.status_code == 400
        assert reused.json()["error"] == "invalid_grant"
        assert reused.json()["error_code"] == "refresh_token_not_found"

        current = refreshed.session.refresh_token
        out = http.post(
            "/auth/v1/logout",
            headers={"Authorization": f"Bearer {refreshed.session.access_token}"},
        )
        assert out.status_code == 204
        after = http.post(
            "/auth/v1/token", params={"grant_type": "refresh_token"},
            json={"refresh_token": current},
        )  # fmt: skip
        assert after.status_code == 400


def test_errors_are_gotrue_shaped_never_500(make_server: object) -> None:
    server: ServerProcess = make_server()  # type: ignore[operator]
    add_user("carol@example.com")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        cases = [
            ({"grant_type": "password"}, b"{not json", 400, "bad_json"),
            ({"grant_type": "password"}, b"[1]", 400, "bad_json"),
            ({"grant_type": "password"}, json.dumps({"email": "x"}).encode(), 400,
             "validation_failed"),
            ({"grant_type": "password"},
             json.dumps({"email": "carol@example.com", "password": 5}).encode(), 400,
             "validation_failed"),
            ({"grant_type": "magic"}, b"{}", 400, "unsupported_grant_type"),
            ({"grant_type": "refresh_token"}, b"{}", 400, "validation_failed"),
            ({"grant_type": "refresh_token"}, json.dumps({"refresh_token": "nope"}).encode(),
             400, "refresh_token_not_found"),
        ]  # fmt: skip
        for params, body, status, code in cases:
            answer = http.post("/auth/v1/token", params=params, content=body)
            assert answer.status_code == status, (params, body, answer.text)
            assert answer.json()["error_code"] == code
            assert answer.json()["msg"]
        no_token = http.get("/auth/v1/user")
        assert no_token.status_code == 401 and no_token.json()["error_code"] == "no_authorization"
        bad = http.get("/auth/v1/user", headers={"Authorization": "Bearer a.b.c"})
        assert bad.status_code == 403 and bad.json()["error_code"] == "bad_jwt"
        # A service-role key is no user.
        service = Authenticator("unused", secret_of(server)).make_jwt(None, "service_role")
        not_user = http.get("/auth/v1/user", headers={"Authorization": f"Bearer {service}"})
        assert not_user.status_code == 403


def test_a_bad_access_ttl_stops_the_start_with_one_line(make_server: object) -> None:
    server: ServerProcess = make_server(env={"JOBCTL_AUTH_ACCESS_TTL": "soon"}, start=False)  # type: ignore[operator]
    with pytest.raises(RuntimeError) as exc:
        server.start()
    server.ended = True  # its exit is the point of the test
    assert "JOBCTL_AUTH_ACCESS_TTL: not a number" in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_server_key_prints_a_key_the_server_accepts(make_server: object) -> None:
    server: ServerProcess = make_server()  # type: ignore[operator]
    run = subprocess.run(
        [sys.executable, "-m", "jobctl", "server", "key", "anon", "--days", "1"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    claims = jwt.decode(run.stdout.strip(), secret_of(server), algorithms=["HS256"])
    assert claims["role"] == "anon" and "sub" not in claims
    assert 86000 < claims["exp"] - time.time() <= 86400
    # The stand-in takes it as an apikey (anon reads nothing, but is let in).
    answer = httpx.get(f"{server.url}/rest/v1/jobs", headers={"apikey": run.stdout.strip()})
    assert answer.status_code == 200 and answer.json() == []
    bad = subprocess.run(
        [sys.executable, "-m", "jobctl", "server", "key", "root"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert bad.returncode == 2 and "anon or service_role" in bad.stderr
