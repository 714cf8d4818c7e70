"""Profiles, layered settings and tokens, through the real commands."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

from tests.clirun import invoke, jobctl
from tests.conftest import ServerProcess


def config_path() -> Path:
    return Path(os.environ["JOBCTL_CONFIG_DIR"]) / "config.toml"


def test_precedence_flag_env_file_default() -> None:
    def timeout(*args: str, env: dict[str, str | None] | None = None) -> tuple[str, str]:
        data = json.loads(invoke(*args, "config", "show", "--json", env=env).stdout)
        return data["values"]["timeout"], data["sources"]["timeout"]

    assert timeout() == (30.0, "default")
    assert invoke("config", "set", "timeout", "12").code == 0
    assert timeout() == (12.0, "file")
    assert timeout(env={"JOBCTL_TIMEOUT": "7"}) == (7.0, "env JOBCTL_TIMEOUT")
    # A profile's own value beats the top level; the environment still beats both.
    assert invoke("config", "set", "timeout", "9", "--profile", "local").code == 0
    assert timeout() == (9.0, "profile local")
    assert timeout(env={"JOBCTL_TIMEOUT": "7"}) == (7.0, "env JOBCTL_TIMEOUT")

    urls = json.loads(
        invoke(
            "--api-url",
            "http://flag:1",
            "config",
            "show",
            "--json",
            env={"JOBCTL_API_URL": "http://env:1"},
        ).stdout
    )
    assert (urls["values"]["api_url"], urls["sources"]["api_url"]) == ("http://flag:1", "flag")


def test_profiles(server: ServerProcess) -> None:
    assert invoke("config", "set", "api_url", server.url, "--profile", "other").code == 0
    text = config_path().read_text()
    assert tomllib.loads(text)["profiles"]["other"] == {"api_url": server.url}
    # A remote profile without a token says how to log in.
    invoke("list", "--profile", "other").one_line_error(5, "jobctl auth login --profile other")
    # Log in with the token on stdin; it is checked with the server, then saved (0600).
    login = invoke("auth", "login", "--profile", "other", stdin=server.token + "\n")
    assert login.code == 0, login.stderr
    assert server.token not in login.stderr + login.stdout
    assert stat.S_IMODE(config_path().stat().st_mode) == 0o600
    assert invoke("list", "--profile", "other").code == 0
    assert invoke("-p", "other", "auth", "token").stdout.strip() == server.token
    status = invoke("auth", "status", "--profile", "other")
    assert status.code == 0, status.stderr
    assert "token accepted" in status.stdout and server.token not in status.stdout
    assert "from profile other" in status.stdout
    # Switch the default profile through the config.
    assert invoke("config", "set", "profile", "other").code == 0
    assert invoke("config", "get", "profile").stdout.strip() == "other"
    assert invoke("config", "get", "api_url").stdout.strip() == server.url


def test_login_with_a_wrong_token_saves_nothing(server: ServerProcess) -> None:
    wrong = "jctl_wrong_wrong_wrong"
    result = invoke("auth", "login", "--token", wrong)
    result.one_line_error(5, "not authenticated")
    assert wrong not in result.stderr
    assert not config_path().exists() or wrong not in config_path().read_text()


def test_unknown_profile() -> None:
    invoke("list", "--profile", "nope").one_line_error(2, "no profile named 'nope'")


def test_secrets_never_print(server: ServerProcess) -> None:
    invoke("auth", "login", stdin=server.token)
    shown = invoke("config", "show")
    assert shown.code == 0
    assert server.token not in shown.stdout + shown.stderr
    assert "jctl_************" in shown.stdout
    got = invoke("config", "get", "token")
    assert server.token not in got.stdout and "*" in got.stdout
    assert server.token not in invoke("config", "show", "--json").stdout
    invoke("config", "set", "token", "abc").one_line_error(2, "jobctl auth login")


def test_auth_token_of_the_local_profile(server: ServerProcess) -> None:
    result = invoke("auth", "token")
    assert (result.code, result.stdout.strip()) == (0, server.token)
    assert "the local server's token file" in invoke("auth", "status").stdout


def test_auth_status_without_a_server() -> None:
    invoke("auth", "status").one_line_error(5, "not logged in")


def test_config_path_and_unset() -> None:
    assert invoke("config", "path").stdout.strip() == str(config_path())
    assert invoke("config", "set", "retries", "5").code == 0
    assert invoke("config", "get", "retries").stdout.strip() == "5"
    assert invoke("config", "unset", "retries").code == 0
    assert invoke("config", "get", "retries").stdout.strip() == "3"
    invoke("config", "set", "retries", "many").one_line_error(2, "retries: expected a whole number")
    invoke("config", "set", "colour", "x").one_line_error(2, "unknown config key 'colour'")
    invoke("config", "set", "api_url", "ftp://x").one_line_error(2, "http:// or https://")


def test_broken_config_file_is_one_line() -> None:
    config_path().parent.mkdir(parents=True)
    config_path().write_text("this is = = not toml")
    invoke("list").one_line_error(2, "cannot read the config file")


def test_help_lists_exit_codes() -> None:
    text = jobctl("--help").stdout
    for code in ("  0  ok", "  6  backend unreachable", "130  interrupted"):
        assert code in text
    table = jobctl("help", "exit-codes").stdout
    assert len(table.strip().splitlines()) == 11
    assert invoke("help", "environment").stdout.count("JOBCTL_") >= 10


def test_version_and_bare_command() -> None:
    assert jobctl("--version").stdout.strip().startswith("jobctl ")
    bare = jobctl()
    assert bare.code == 0 and "Usage: jobctl" in bare.stdout
