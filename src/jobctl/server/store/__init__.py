"""Storage: the only place with SQL. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobctl.server.store.base import Store

POSTGRES_MISSING = (
    "PostgreSQL support is not installed; install it with: pip install 'jobctl[postgres]'"
)


class StoreDriverMissing(Exception):
    """The store asked for needs a driver that is not installed (PostgreSQL without the
    `postgres` extra); a one-line reason for the user."""


def open_store(db: str, *, schema: str | None = None, publish: Sequence[Any] = ()) -> Store:
    """A store for a path (SQLite) or a `postgresql://` URL (its own tables in `schema`, and
    app tables it publishes: store/published.py's PublishSpec)."""
    if db.startswith(("postgresql://", "postgres://")):
        try:
            from jobctl.server.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:  # psycopg: the `postgres` extra
            raise StoreDriverMissing(f"{POSTGRES_MISSING} ({exc})") from exc

        store: Store = PostgresStore(db, schema=schema, publish=publish)
        return store
    from jobctl.server.store.sqlite import SQLiteStore

    return SQLiteStore(db)


__all__ = ["Store", "StoreDriverMissing", "open_store"]
