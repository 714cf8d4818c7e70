"""Small pieces of the command line: argv normalisation, settings layering, rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobctl.cli import normalize_argv
from jobctl.commands.render import age, progress_bar, render_jobs_table, render_jobs_tsv, table
from jobctl.config import dump_toml, load_settings, mask, parse_value, read_file
from jobctl.errors import UsageError
from jobctl.jobshape import JOB_FIELD_NAMES
from jobctl.models import Job, JobStatus


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "--json"], ["list", "--json="]),
        (["list", "--json", "id,status"], ["list", "--json", "id,status"]),
        (["list", "--json", "id,nope"], ["list", "--json", "id,nope"]),
        (["show", "--json", "abcd12"], ["show", "--json=", "abcd12"]),
        (["show", "--json", "abc"], ["show", "--json=", "abc"]),  # hex, names no field
        (["list", "--json", "--limit", "3"], ["list", "--json=", "--limit", "3"]),
        (
            ["list", "--profile", "prod", "-s", "failed"],
            ["--profile", "prod", "list", "-s", "failed"],
        ),
        (
            ["list", "--no-color", "--api-url=http://x"],
            ["--no-color", "--api-url=http://x", "list"],
        ),
        (["submit", "--", "--json"], ["submit", "--", "--json"]),
    ],
)
def test_normalize_argv(argv: list[str], expected: list[str]) -> None:
    assert normalize_argv(argv) == expected


def test_settings_layers(tmp_path: object) -> None:
    s = load_settings({"JOBCTL_NO_AUTOSTART": "1"})
    assert (s.get("autostart"), s.sources["autostart"]) == (False, "env JOBCTL_NO_AUTOSTART")
    assert load_settings({}).autostart is True
    assert load_settings({"JOBCTL_AUTOSTART": "0"}).autostart is False
    # An explicit URL is not "the local server": no autostart for it.
    assert load_settings({"JOBCTL_API_URL": "http://x"}).autostart is False
    assert load_settings({}, {"retries": "1"}).retries == 1


def test_parse_value_errors() -> None:
    assert parse_value("autostart", "Yes") is True
    assert parse_value("api_url", "https://x/") == "https://x"
    for key, raw in (("autostart", "maybe"), ("timeout", "-1"), ("port", "x")):
        with pytest.raises(UsageError):
            parse_value(key, raw)


def test_toml_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    data = {
        "profile": "p",
        "autostart": False,
        "timeout": 2.5,
        "profiles": {"p": {"api_url": 'http://a"b', "token": "t\\n"}},
    }
    path = Path(str(tmp_path)) / "c.toml"
    path.write_text(dump_toml(data))
    assert read_file(path) == data


def test_mask() -> None:
    assert mask("jctl_abcdefghijkl") == "jctl_************"
    assert "abc" not in mask("abcdefghijkl")
    assert mask(None) == "(none)"


def test_render_pieces() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert progress_bar(55) == "██████░░░░  55%"
    assert progress_bar(150) == "██████████ 100%"
    assert age(now - timedelta(minutes=3, seconds=5), now) == "3m ago"
    assert age(now - timedelta(days=2), now) == "2d ago"
    assert table(["A", "LONG"], [["x", "a b  c " * 30]], width=20).splitlines()[1].endswith("…")
    job = Job(
        id="3fa2c0de-1111-4000-8000-000000000001",
        type="demo",
        status=JobStatus.FAILED,
        progress=40,
        message="Step 2",
        error="it broke\twith a tab",
        created_at=now,
    )
    assert render_jobs_tsv([job]) == (
        "3fa2c0de-1111-4000-8000-000000000001\tdemo\tfailed\t40\t2026-03-02T12:00:00.000000Z\t"
        "it broke with a tab"
    )
    plain = render_jobs_table([job], now, color=False)
    assert "3fa2c0de  demo  ✖ failed" in plain and "\x1b" not in plain
    assert "\x1b[31m✖ failed\x1b[0m" in render_jobs_table([job], now, color=True)


def test_the_context_builds_both_clients_alike() -> None:
    """The async client (live feed, dashboard) comes from the same place as the blocking one:
    the profile's endpoint, its settings, the autostart hook and the test's transport."""
    import io

    import httpx

    from jobctl.commands.context import Context

    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    env = {"JOBCTL_TIMEOUT": "7", "JOBCTL_RETRIES": "2", "JOBCTL_PORT": "8799"}
    ctx = Context(io.StringIO(), io.StringIO(), io.StringIO(), env, transport=transport)
    sync, live = ctx.client(), ctx.async_client()
    quiet = ctx.async_client(autostart=False, retries=0)
    for client in (sync, live):
        assert client.base_url == "http://127.0.0.1:8799"
        assert (client.core.retries, client.core.timeout.read) == (2, 7.0)
        assert client.core.on_unreachable == ctx.autostart
        assert client._transport is transport
    assert quiet.core.on_unreachable is None and quiet.core.retries == 0
    assert ctx.secrets() == [] and not live.core.tls


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        ([], None),  # tab-separated lines: the summary (no input, no output)
        (["--json", "id,input"], "id,input"),
        (["--json", "input_bytes"], "input_bytes"),
        (["--json"], ",".join(JOB_FIELD_NAMES)),  # every field of the job, as before
        (["--jsonl"], ",".join(JOB_FIELD_NAMES)),
    ],
)
def test_list_asks_the_server_for_what_it_prints(args: list[str], fields: str | None) -> None:
    import httpx

    from tests.clirun import invoke

    asked: list[httpx.QueryParams] = []
    row = {"id": "3fa2c0de-1111-4000-8000-000000000001", "type": "demo", "status": "pending"}

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params)
        return httpx.Response(200, json={"jobs": [{**row, "input_bytes": 2}], "next_cursor": None})

    env = {"JOBCTL_PORT": "8799", "JOBCTL_TOKEN": "t"}
    result = invoke("list", *args, env=env, transport=httpx.MockTransport(answer))
    assert result.code == 0, result.stderr
    assert [p.get("fields") for p in asked] == [fields]
    if args[:2] == ["--json", "input_bytes"]:
        assert result.stdout.strip().replace(" ", "").replace("\n", "") == '[{"input_bytes":2}]'
