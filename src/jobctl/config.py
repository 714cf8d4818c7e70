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

import math
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
    # the Supabase session's refresh token (app profiles: `auth login --email`)
    "refresh_token": (None, "JOBCTL_REFRESH_TOKEN", True),
    "supabase_url": (None, "JOBCTL_SUPABASE_URL", True),
    "supabase_anon_key": (None, "JOBCTL_SUPABASE_ANON_KEY", True),
    "autostart": (True, "JOBCTL_AUTOSTART", False),
    "port": (DEFAULT_PORT, "JOBCTL_PORT", False),
    "timeout": (30.0, "JOBCTL_TIMEOUT", False),
    "retries": (3, "JOBCTL_RETRIES", False),
    "reconnect_seconds": (60.0, "JOBCTL_RECONNECT_SECONDS", False),
}
SECRET_KEYS = frozenset({"token", "refresh_token", "supabase_anon_key"})
# What an app profile's file (<config dir>/apps/NAME.toml, backends/appprofile.py) may set
# in its [app] table, below the config file's own [profiles.NAME] values.
APP_FILE_KEYS = ("api_url", "supabase_url", "supabase_anon_key")
# Also read: JOBCTL_NO_AUTOSTART=1 (same as JOBCTL_AUTOSTART=0), NO_COLOR, JOBCTL_DEBUG,
# and the directory overrides of jobctl.paths (JOBCTL_CONFIG_DIR, JOBCTL_DATA_DIR,
# JOBCTL_CONFIG_FILE).
ENV_NO_AUTOSTART = "JOBCTL_NO_AUTOSTART"
ENV_DEBUG = "JOBCTL_DEBUG"
ENV_NO_COLOR = "NO_COLOR"

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


# Numeric keys: (lowest, highest, lowest allowed?) -- a timeout of 0 would fail every call.
RANGES: dict[str, tuple[float, float, bool]] = {
    "port": (0, 65535, True),  # 0: the local server picks a free port
    "timeout": (0, 86400, False),
    "retries": (0, 100, True),
    "reconnect_seconds": (0, 86400, True),
}


def parse_value(key: str, raw: Any) -> Any:
    """Coerce a value from the environment, the file or `config set` to the key's type,
    and check it is one jobctl can use (a port that exists, a timeout above 0)."""
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
        return _number(key, raw, type(default))
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise UsageError(f"{key}: expected a string, got {raw!r:.40}")
    text = raw.strip()
    if key in ("api_url", "supabase_url") and text and not text.startswith(("http://", "https://")):
        raise UsageError(f"{key}: expected an http:// or https:// URL, got {text[:60]!r}")
    return text.rstrip("/") if key.endswith("_url") else text


def _number(key: str, raw: Any, kind: type) -> int | float:
    wanted = "a whole number" if kind is int else "a number"
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise UsageError(f"{key}: expected {wanted}, got {raw!r:.40}")
    try:
        value = float(raw) if kind is float else _whole(raw)
    except (TypeError, ValueError):
        raise UsageError(f"{key}: expected {wanted}, got {str(raw)[:40]!r}") from None
    low, high, low_ok = RANGES[key]
    if not math.isfinite(value) or value > high or value < low or (value == low and not low_ok):
        span = f"from {low:g} to {high:g}" if low_ok else f"over {low:g} and at most {high:g}"
        raise UsageError(f"{key}: must be {span}, got {str(raw)[:40]!r}")
    return value


def _whole(raw: str | int | float) -> int:
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError(raw)
        return int(raw)
    if isinstance(raw, str) and not raw.strip().isascii():
        raise ValueError(raw)
    return int(raw)


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the config file {path}: {exc}") from None


def _edit(path: Path) -> Any:
    """The config file as a tomlkit document, to change and write back with its comments,
    order and every table jobctl does not know (`[tui]`) exactly as they were."""
    import tomlkit
    import tomlkit.exceptions

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the config file {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise UsageError(
            f"cannot read the config file {path}: {exc}; fix or remove it first"
        ) from None


def dump_toml(data: Mapping[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(data)


def _save(path: Path, doc: Any) -> None:
    # 0600 always: the file may hold tokens.
    paths.write_secret(path, dump_toml(doc))


def write_file(path: Path, data: Mapping[str, Any]) -> None:
    """Write a whole config file (tests and first set-ups; `set_value` edits in place)."""
    _save(path, data)


def check_file_data(path: Path, data: Mapping[str, Any]) -> None:
    """Every value jobctl reads from the file is one it can use: what `config set`
    leaves behind loads, and a bad value found on reading names the file."""
    profiles = data.get("profiles", {})
    if not isinstance(profiles, Mapping):
        raise UsageError(f"{path}: [profiles] must be a table")
    tables: list[tuple[str, Mapping[str, Any]]] = [("", data)]
    for name, table in profiles.items():
        if not isinstance(table, Mapping):
            raise UsageError(f"{path}: profiles.{name} must be a table ([profiles.{name}])")
        tables.append((f"[profiles.{name}] ", table))
    for where, table in tables:
        for key, value in table.items():
            if key not in KEYS or isinstance(value, Mapping):
                continue
            try:
                parse_value(key, value)
            except UsageError as exc:
                raise UsageError(f"{path}: {where}{exc.message}") from None


def file_profile(env: Mapping[str, str], flags: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The active profile's name from the flag, the environment or the file alone (for
    config commands, which must work while other values in the file are wrong)."""
    for value in (flags.get("profile"), env.get(KEYS["profile"][1]), data.get("profile")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return LOCAL_PROFILE


@dataclass(frozen=True)
class Settings:
    profile: str
    values: dict[str, Any]
    sources: dict[str, str]  # key -> "flag", "env JOBCTL_X", "file", "profile NAME", "default"
    config_path: Path
    data_dir: Path
    known_profiles: tuple[str, ...] = field(default=())
    app_file: Path | None = None  # an app profile's file (backends/appprofile.py)

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
    check_file_data(path, data)
    profiles: dict[str, Any] = data.get("profiles") or {}

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
    app = app_file_values(profile)
    table = {**app, **(profiles.get(profile) or {})}
    known = tuple(sorted({LOCAL_PROFILE, *profiles, *app_profiles()}))
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
    app_file = paths.app_profile_file(profile)
    return Settings(
        profile,
        values,
        sources,
        path,
        paths.data_dir(),
        known,
        app_file if profile != LOCAL_PROFILE and app_file.is_file() else None,
    )


def app_profiles() -> list[str]:
    """The names of the app profiles: their files in <config dir>/apps/."""
    try:
        return [p.stem for p in (paths.config_dir() / "apps").glob("*.toml")]
    except OSError:
        return []


def app_file_values(profile: str) -> dict[str, Any]:
    """The settings of an app profile's [app] table (api_url, supabase_url, anon key)."""
    if profile == LOCAL_PROFILE:
        return {}
    path = paths.app_profile_file(profile)
    data = read_file(path)
    app = data.get("app")
    if not isinstance(app, Mapping):
        return {}
    values = {k: app[k] for k in APP_FILE_KEYS if k in app}
    for key, value in values.items():
        try:
            parse_value(key, value)
        except UsageError as exc:
            raise UsageError(f"{path}: [app] {exc.message}") from None
    return values


def set_value(key: str, value: str, profile: str | None) -> tuple[Path, str]:
    """Write one key to the config file; returns the path and where it went.

    Only that key changes: the rest of the file (comments, order, other tables) is kept
    byte for byte. The value is checked first, and the file as it would be after.
    """
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r} (known: {', '.join(KEYS)})")
    parsed = parse_value(key, value)
    path = paths.config_file()
    doc = _edit(path)
    per_profile = KEYS[key][2]
    if key == "profile":
        known = sorted({LOCAL_PROFILE, *_table(doc, "profiles"), *app_profiles()})
        if parsed not in known:
            raise UsageError(
                f"no profile named {parsed!r} (known: {', '.join(known)}); create it with "
                f"`jobctl config set api_url URL --profile {parsed}`"
            )
    if per_profile or (profile is not None and key != "profile"):
        import tomlkit

        name = profile or str(doc.get("profile") or LOCAL_PROFILE)
        if "profiles" not in doc:
            doc.add("profiles", tomlkit.table(is_super_table=True))
        profiles = doc["profiles"]
        if name in profiles:
            profiles[name][key] = parsed
        else:  # a new table, with the blank line that sets tables apart
            table = tomlkit.table()
            table.add(key, parsed)
            table.add(tomlkit.nl())
            profiles.add(name, table)
        where = f"profile {name}"
    else:
        doc[key] = parsed
        where = "top level"
    check_file_data(path, doc.unwrap())
    _save(path, doc)
    return path, where


def _table(doc: Any, name: str) -> Mapping[str, Any]:
    table = doc.get(name)
    return table if isinstance(table, Mapping) else {}


def unset_value(key: str, profile: str) -> bool:
    """Remove a key (from the profile's table if set there, else the top level), keeping
    the rest of the file as it is, wrong values included: unset is how one fixes them."""
    path = paths.config_file()
    doc = _edit(path)
    table = _table(_table(doc, "profiles"), profile)
    if key in table and not isinstance(table[key], Mapping):
        del doc["profiles"][profile][key]
    elif key in doc and not isinstance(doc[key], Mapping):
        del doc[key]
    else:
        return False
    _save(path, doc)
    return True


def mask(secret: str | None) -> str:
    """Enough to tell tokens apart, never enough to use one."""
    if not secret:
        return "(none)"
    prefix = secret[:5] if secret.startswith("jctl_") else ""
    return f"{prefix}{'*' * 12}"
