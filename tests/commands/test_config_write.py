"""`jobctl config` writes through tomlkit: other tables and comments are kept byte for
byte; what it writes is checked first; a broken file is one clear error (issue #10)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from tests.clirun import invoke

ORIGINAL = """\
# jobctl settings, written by hand
profile = "local"   # the active one

[profiles.staging]
api_url = "https://jobs.example.com"  # staging
timeout = 12.5

[tui]
theme = "dark"   # keep me

[tui.keys]
quit = "ctrl+q"
"""


def config_path() -> Path:
    return Path(os.environ["JOBCTL_CONFIG_DIR"]) / "config.toml"


def write(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_set_and_unset_keep_everything_else_byte_for_byte() -> None:
    path = write(ORIGINAL)
    assert invoke("config", "set", "autostart", "false").code == 0
    text = path.read_text()
    assert text == ORIGINAL.replace(
        '"   # the active one\n', '"   # the active one\nautostart = false\n'
    )
    assert invoke("config", "set", "timeout", "7", "--profile", "staging").code == 0
    assert path.read_text() == text.replace("timeout = 12.5", "timeout = 7.0")
    assert invoke("config", "set", "api_url", "http://127.0.0.1:1", "--profile", "new").code == 0
    data = tomllib.loads(path.read_text())
    assert data["profiles"]["new"] == {"api_url": "http://127.0.0.1:1"}
    assert data["tui"] == {"theme": "dark", "keys": {"quit": "ctrl+q"}}
    assert invoke("config", "unset", "api_url", "--profile", "new").code == 0
    assert invoke("config", "unset", "autostart").code == 0
    assert invoke("config", "set", "timeout", "12.5", "--profile", "staging").code == 0
    # all as it was, but for the profile made on the way (now empty)
    assert path.read_text() == ORIGINAL.replace("[tui]\n", "[profiles.new]\n\n[tui]\n", 1)


def test_what_config_set_writes_is_checked_first() -> None:
    path = write(ORIGINAL)
    refused = [
        (("profile", "NOSUCH"), "no profile named 'NOSUCH' (known: local, staging)"),
        (("port", "99999"), "port: must be from 0 to 65535"),
        (("port", "65536"), "port: must be from 0 to 65535"),
        (("timeout", "0"), "timeout: must be over 0"),
        (("timeout", "nan"), "timeout: must be over 0"),
        (("retries", "1.5"), "retries: expected a whole number"),
        (("autostart", "maybe"), "autostart: expected true or false"),
        (("api_url", "ftp://x"), "api_url: expected an http:// or https:// URL"),
        (("colour", "red"), "unknown config key 'colour'"),
    ]
    for args, message in refused:
        invoke("config", "set", *args).one_line_error(2, message)
        assert path.read_text() == ORIGINAL, args
    assert invoke("config", "set", "profile", "staging").code == 0
    assert invoke("config", "set", "port", "65535").code == 0


def test_a_bad_value_in_the_file_is_one_error_that_names_it() -> None:
    path = write(ORIGINAL.replace("timeout = 12.5", 'timeout = "abc"'))
    for args in (("config", "show"), ("list",), ("config", "set", "autostart", "false")):
        invoke(*args).one_line_error(2, str(path), "[profiles.staging] timeout: expected a number")
    assert invoke("config", "path").stdout.strip() == str(path)
    # set and unset are how it gets fixed
    assert invoke("config", "set", "timeout", "5", "--profile", "staging").code == 0
    assert invoke("config", "show").code == 0
    write("port = 99999\n")
    invoke("config", "show").one_line_error(2, "port: must be from 0 to 65535")
    assert invoke("config", "unset", "port").code == 0
    assert invoke("config", "show").code == 0
    write('[profiles]\nstaging = "not a table"\n')
    invoke("list").one_line_error(2, "profiles.staging must be a table")


def test_a_corrupt_file_is_one_clear_error_and_config_path_still_answers() -> None:
    path = write(ORIGINAL + "garbage = = =\n")
    for args in (("config", "show"), ("list",), ("config", "get", "timeout")):
        invoke(*args).one_line_error(2, f"cannot read the config file {path}", "line 13")
    invoke("config", "set", "timeout", "3").one_line_error(2, "cannot read the config file")
    assert path.read_text() == ORIGINAL + "garbage = = =\n"
    result = invoke("config", "path")
    assert (result.code, result.stdout.strip(), result.stderr) == (0, str(path), "")
