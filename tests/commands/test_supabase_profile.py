"""A profile with only a Supabase project: `list`, `show` and `watch` read the `jobs` table
through PostgREST (supabase-py) and follow it through Realtime with the user's JWT set on the
client before subscribing; writes are refused. The "project" is the embedded server, which
answers `/rest/v1/jobs` and `/realtime/v1` as Supabase does: the anon key is a JWT with role
anon and the user's token a JWT for user `local` (who owns the jobs made with the server's
own token), both signed with the server's secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobctl.config import write_file
from tests.clirun import invoke
from tests.commands.watchkit import demo, mint, parse_jsonl
from tests.conftest import ServerProcess, wait_job


def use_supabase_profile(server: ServerProcess, token: str) -> None:
    profile = {
        "supabase_url": server.url,
        "supabase_anon_key": mint(server, None, role="anon"),
        "token": token,
    }
    write_file(Path(os.environ["JOBCTL_CONFIG_DIR"]) / "config.toml", {"profiles": {"sb": profile}})


@pytest.fixture
def jobs(server: ServerProcess) -> dict[str, str]:
    """Two of user local's jobs (one completed, one failed) and one of bob's."""
    with server.client() as http, server.client(mint(server, "bob")) as as_bob:
        done = demo(http, steps=1, step_seconds=0)
        failed = demo(http, steps=1, step_seconds=0, fail_at=1, fail_times=99)
        bobs = demo(as_bob, steps=1, step_seconds=0)
        for job_id, client in ((done, http), (failed, http), (bobs, as_bob)):
            wait_job(client, job_id)
    use_supabase_profile(server, mint(server, "local"))
    return {"done": done, "failed": failed, "bobs": bobs}


def test_list_and_show_read_the_table_through_postgrest(jobs: dict[str, str]) -> None:
    listed = invoke("list", "--profile", "sb", "--json", "id,status")
    assert listed.code == 0, listed.stderr
    assert {j["id"]: j["status"] for j in json.loads(listed.stdout)} == {
        jobs["done"]: "completed",
        jobs["failed"]: "failed",
    }, "row-level security: only the user's own jobs"
    failed_only = invoke("list", "-p", "sb", "--status", "failed", "--since", "1h")
    assert failed_only.stdout.split("\t")[0] == jobs["failed"]
    assert len(failed_only.stdout.splitlines()) == 1
    shown = invoke("show", jobs["done"][:8], "--profile", "sb", "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"
    invoke("show", jobs["bobs"], "-p", "sb").one_line_error(4, "not found")


def test_watch_follows_through_realtime_with_the_users_jwt(
    server: ServerProcess, jobs: dict[str, str]
) -> None:
    with server.client() as http:
        # ~6 s: still running once the watch (which loads the PostgREST client) has
        # subscribed, even on a loaded machine; 1 s jobs ended before it started there
        ids = [demo(http, steps=30, step_seconds=0.2) for _ in range(2)]
    result = invoke("watch", *ids, jobs["done"], "--profile", "sb", "--jsonl")
    assert result.code == 0, result.stderr
    summary = parse_jsonl(result.stdout).summary
    assert [j["status"] for j in summary["jobs"]] == ["completed"] * 3
    # The channel joined with the anon key alone would see no rows: these came through
    # Realtime only because the user's JWT was set on the client before subscribing.
    assert summary["deliveries"].get("realtime", 0) > 0, summary
    assert "realtime unavailable" not in result.stderr


def test_writes_need_the_job_api(jobs: dict[str, str]) -> None:
    for args in (["submit", "--type", "demo", "--input", "{}"], ["cancel", jobs["done"]]):
        invoke(*args, "-p", "sb").one_line_error(2, "has only a Supabase project (no api_url)")


def test_a_bad_token_is_an_auth_error(server: ServerProcess, jobs: dict[str, str]) -> None:
    forged = mint(server, "local").rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    use_supabase_profile(server, forged)
    line = invoke("list", "-p", "sb").one_line_error(5, "not authenticated by the Supabase project")
    assert forged not in line


def test_auth_login_checks_the_jwt_with_postgrest(server: ServerProcess) -> None:
    use_supabase_profile(server, "")
    forged = mint(server, "local").rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    invoke("auth", "login", "-p", "sb", stdin=forged + "\n").one_line_error(5, "not authenticated")
    good = invoke("auth", "login", "-p", "sb", stdin=mint(server, "local") + "\n")
    assert good.code == 0, good.stderr
    assert invoke("list", "-p", "sb").code == 0
