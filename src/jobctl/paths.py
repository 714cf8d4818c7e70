"""Where jobctl keeps its files: XDG locations, overridable for tests and CI.

Hand-rolled rather than platformdirs to keep `jobctl --help` start-up lean.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def config_dir() -> Path:
    if value := os.environ.get("JOBCTL_CONFIG_DIR"):
        return Path(value)
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "jobctl"
    base = os.environ.get("XDG_CONFIG_HOME") or str(_home() / ".config")
    return Path(base) / "jobctl"


def data_dir() -> Path:
    if value := os.environ.get("JOBCTL_DATA_DIR"):
        return Path(value)
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "jobctl"
    base = os.environ.get("XDG_DATA_HOME") or str(_home() / ".local" / "share")
    return Path(base) / "jobctl"


def token_file() -> Path:
    """The embedded server's API token (mode 0600), read by the local profile."""
    return config_dir() / "server-token"


def jwt_secret_file() -> Path:
    return config_dir() / "jwt-secret"


def app_profile_file(profile: str) -> Path:
    """An app profile: how jobctl reads and drives an app's own jobs table and API."""
    return config_dir() / "apps" / f"{profile}.toml"


def config_file() -> Path:
    if value := os.environ.get("JOBCTL_CONFIG_FILE"):
        return Path(value)
    return config_dir() / "config.toml"


def write_secret(path: Path, value: str) -> None:
    """Create a file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
