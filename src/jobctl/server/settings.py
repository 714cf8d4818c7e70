"""What `jobctl server run` was told: listening address, store, job types, engine tuning.

Built by the command from its flags and the layered settings of jobctl.config (the
port); defaults, paths and DEFAULT_PORT come from there too."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobctl import paths
from jobctl.config import DEFAULT_HOST, DEFAULT_PORT
from jobctl.server.engine import EngineSettings


@dataclass
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str = ""  # a SQLite path or a postgresql:// URL; "" = data dir default
    data_dir: Path = field(default_factory=paths.data_dir)
    token_file: Path = field(default_factory=paths.token_file)
    jwt_secret: str | None = None
    jwt_secret_file: Path = field(default_factory=paths.jwt_secret_file)
    functions: list[str] = field(default_factory=list)
    max_body_bytes: int = 1024 * 1024
    engine: EngineSettings = field(default_factory=EngineSettings)
    timeouts: dict[str, float] = field(default_factory=dict)  # per type, overrides
    state_file: Path | None = None  # written once listening: pid, url, db
    access_log: bool = False
    publish: list[str] = field(default_factory=list)  # app tables to publish: schema.table
    owner_column: str = "user_id"  # their column holding the owner's user id (JWT sub)

    @property
    def db_target(self) -> str:
        return self.db or str(self.data_dir / "jobctl.db")
