"""Storage: the only place with SQL. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from jobctl.server.store.base import Store

POSTGRES_MISSING = (
    "PostgreSQL support is not installed; install it with: pip install 'jobctl[postgres]'"
)


class StoreUnavailable(Exception):
    """The store asked for cannot be used here (a one-line reason for the user)."""


def open_store(db: str) -> Store:
    """A store for a path (SQLite) or a `postgresql://` URL."""
    if db.startswith(("postgresql://", "postgres://")):
        try:
            from jobctl.server.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:  # psycopg or psycopg_pool: the `postgres` extra
            raise StoreUnavailable(f"{POSTGRES_MISSING} ({exc})") from exc

        store: Store = PostgresStore(db)
        return store
    from jobctl.server.store.sqlite import SQLiteStore

    return SQLiteStore(db)


__all__ = ["Store", "StoreUnavailable", "open_store"]
