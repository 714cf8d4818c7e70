"""Storage: the only place with SQL. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from jobctl.server.store.base import Store


def open_store(db: str) -> Store:
    """A store for a path (SQLite) or a `postgresql://` URL."""
    if db.startswith(("postgresql://", "postgres://")):
        from jobctl.server.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(db)
        return store
    from jobctl.server.store.sqlite import SQLiteStore

    return SQLiteStore(db)


__all__ = ["Store", "open_store"]
