"""Typed, layered settings: flags > JOBCTL_* environment > config file > defaults.

Every environment variable the client reads is named here. The config file is
TOML in the user's config dir:

    profile = "local"            # the active profile
    autostart = true

    [profiles.staging]
    api_url = "https://jobs.example.com"
    token = "..."                # written by `jobctl auth login`, file mode 0600

A key is looked up in the active profile's table first, then at the top level,
so any key can be set per profile. The `local` profile needs no entry: it talks
to the embedded server in the data dir and reads that server's token file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobctl import paths
from jobctl.errors import UsageError

LOCAL_PROFILE = "local"
DEFAULT_HOST = "127.0.0.1"  # the local server listens on loopback only, unless told otherwise
DEFAULT_PORT = 8765  # the one definition: the local server, `server run|start` and autostart

# name -> (default, environment variable, per-profile?)
KEYS: dict[str, tuple[Any, str, bool]] = {
    "profile": (LOCAL_PROFILE, "JOBCTL_PROFILE", False),
    "api_url": (None, "JOBCTL_API_URL", True),
    "token": (None, "JOBCTL_TOKEN", True),
    "supabase_url": (None, "JOBCTL_SUPABASE_URL", True),
    "supabase_anon_key": (None, "JOBCTL_SUPABASE_ANON_KEY", True),
    "autostart": (True, "JOBCTL_AUTOSTART", False),
    "port": (DEFAULT_PORT, "JOBCTL_PORT", False),
    "timeout": (30.0, "JOBCTL_TIMEOUT", False),
    "retries": (3, "JOBCTL_RETRIES", False),
    "reconnect_seconds": (60.0, "JOBCTL_RECONNECT_SECONDS", False),
}
SECRET_KEYS = frozenset({"token", "supabase_anon_key"})
# Also read: JOBCTL_NO_AUTOSTART=1 (same as JOBCTL_AUTOSTART=0), NO_COLOR, JOBCTL_DEBUG,
# and the directory overrides of jobctl.paths (JOBCTL_CONFIG_DIR, JOBCTL_DATA_DIR,
# JOBCTL_CONFIG_FILE).
ENV_NO_AUTOSTART = "JOBCTL_NO_AUTOSTART"
ENV_DEBUG = "JOBCTL_DEBUG"
ENV_NO_COLOR = "NO_COLOR"

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def parse_value(key: str, raw: Any) -> Any:
    """Coerce a value from the environment, the file or `config set` to the key's type."""
    default = KEYS[key][0]
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise UsageError(f"{key}: expected true or false, got {str(raw)[:40]!r}")
    if isinstance(default, int | float) and not isinstance(default, bool):
        kind = type(default)
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise UsageError(f"{key}: expected a number, got {str(raw)[:40]!r}") from None
        if value < 0:
            raise UsageError(f"{key}: must not be negative")
        return value
    if raw is None:
        return None
    text = str(raw).strip()
    if key in ("api_url", "supabase_url") and text and not text.startswith(("http://", "https://")):
        raise UsageError(f"{key}: expected an http:// or https:// URL, got {text[:60]!r}")
    return text.rstrip("/") if key.endswith("_url") else text


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the config file {path}: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def dump_toml(data: Mapping[str, Any]) -> str:
    """The small subset of TOML this file uses: scalars at the top, then [profiles.NAME]."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    profiles = data.get("profiles") or {}
    for name, table in profiles.items():
        lines.append("")
        lines.append(f'[profiles."{name}"]')
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def write_file(path: Path, data: Mapping[str, Any]) -> None:
    # 0600 always: the file may hold tokens.
    paths.write_secret(path, dump_toml(data))


@dataclass(frozen=True)
class Settings:
    profile: str
    values: dict[str, Any]
    sources: dict[str, str]  # key -> "flag", "env JOBCTL_X", "file", "profile NAME", "default"
    config_path: Path
    data_dir: Path
    known_profiles: tuple[str, ...] = field(default=())

    def get(self, key: str) -> Any:
        return self.values[key]

    @property
    def is_local(self) -> bool:
        return self.profile == LOCAL_PROFILE

    @property
    def explicit_api_url(self) -> str | None:
        value: str | None = self.values["api_url"]
        return value

    @property
    def supabase_only(self) -> bool:
        """A Supabase project and no job API: reads go to PostgREST, writes are refused."""
        return bool(self.values["supabase_url"]) and not self.explicit_api_url and not self.is_local

    @property
    def autostart(self) -> bool:
        """Start the embedded server on demand: local profile, URL discovered, not turned off."""
        return bool(self.values["autostart"]) and self.is_local and not self.explicit_api_url

    @property
    def timeout(self) -> float:
        return float(self.values["timeout"])

    @property
    def retries(self) -> int:
        return int(self.values["retries"])

    @property
    def port(self) -> int:
        return int(self.values["port"])

    @property
    def reconnect_seconds(self) -> float:
        return float(self.values["reconnect_seconds"])


def load_settings(
    env: Mapping[str, str], flags: Mapping[str, Any] | None = None, *, check_profile: bool = True
) -> Settings:
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path = paths.config_file()
    data = read_file(path)
    profiles: dict[str, Any] = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise UsageError(f"{path}: [profiles] must be a table")

    def layered(key: str, table: Mapping[str, Any]) -> tuple[Any, str]:
        _, env_name, _ = KEYS[key]
        if key in flags:
            return parse_value(key, flags[key]), "flag"
        if key == "autostart" and env.get(ENV_NO_AUTOSTART, "").strip().lower() in TRUE_WORDS:
            return False, f"env {ENV_NO_AUTOSTART}"
        if env_name in env:
            return parse_value(key, env[env_name]), f"env {env_name}"
        if key in table:
            return parse_value(key, table[key]), f"profile {profile}"
        if key in data and not isinstance(data[key], dict):
            return parse_value(key, data[key]), "file"
        return KEYS[key][0], "default"

    profile, profile_source = layered("profile", {})
    profile = str(profile)
    table = profiles.get(profile) or {}
    known = tuple(sorted({LOCAL_PROFILE, *profiles}))
    if check_profile and profile not in known:
        raise UsageError(
            f"no profile named {profile!r} (known: {', '.join(known)}); "
            f"create it with `jobctl config set api_url URL --profile {profile}`"
        )
    values: dict[str, Any] = {"profile": profile}
    sources = {"profile": profile_source}
    for key in KEYS:
        if key != "profile":
            values[key], sources[key] = layered(key, table)
    return Settings(profile, values, sources, path, paths.data_dir(), known)


def set_value(key: str, value: str, profile: str | None) -> tuple[Path, str]:
    """Write one key to the config file; returns the path and where it went."""
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r} (known: {', '.join(KEYS)})")
    parsed = parse_value(key, value)
    path = paths.config_file()
    data = read_file(path)
    per_profile = KEYS[key][2]
    if per_profile or (profile is not None and key != "profile"):
        name = profile or str(data.get("profile") or LOCAL_PROFILE)
        data.setdefault("profiles", {}).setdefault(name, {})[key] = parsed
        where = f"profile {name}"
    else:
        data[key] = parsed
        where = "top level"
    write_file(path, data)
    return path, where


def unset_value(key: str, profile: str) -> bool:
    path = paths.config_file()
    data = read_file(path)
    table = (data.get("profiles") or {}).get(profile) or {}
    if key in table:
        del table[key]
    elif key in data and not isinstance(data[key], dict):
        del data[key]
    else:
        return False
    write_file(path, data)
    return True


def mask(secret: str | None) -> str:
    """Enough to tell tokens apart, never enough to use one."""
    if not secret:
        return "(none)"
    prefix = secret[:5] if secret.startswith("jctl_") else ""
    return f"{prefix}{'*' * 12}"
