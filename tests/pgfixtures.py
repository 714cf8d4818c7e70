"""PostgreSQL fixtures: one throwaway cluster per session, a fresh database per test.

- `pg_url`: a `postgresql://` URL to a new, migrated database (skips only when the
  PostgreSQL binaries are not installed; `.ci/run` installs them).
- `store_url`: parametrized over both stores, "sqlite" (a file in tmp_path) and
  "postgres" (a fresh database), for tests that pass it on: `make_server("--db", store_url)`.
- `@pytest.mark.both_stores` (on a test, or `pytestmark` on a module): every server that
  `make_server` starts without its own `--db` uses SQLite in one run of the test and a
  fresh PostgreSQL database in another (passed as JOBCTL_DB, shared by all servers of
  the test, so restarts find their data). `server.env["JOBCTL_DB"]` is the URL.
`JOBCTL_TEST_STORES=sqlite` (or `postgres`) narrows both to one store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.pgcluster import PgCluster, find_bindir

TEMPLATE = "jobctl_template"
_counter = itertools.count(1)


def _stores() -> list[str]:
    wanted = os.environ.get("JOBCTL_TEST_STORES", "sqlite,postgres")
    return [s.strip() for s in wanted.split(",") if s.strip()]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        # in a thread: this fixture may be set up from inside an async test's event loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _migrate(cluster.url(TEMPLATE))).result(60)
        yield cluster
    finally:
        cluster.stop()


async def _migrate(url: str) -> None:
    from jobctl.server.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    await store.close()


def new_database(cluster: PgCluster, *, migrated: bool = True) -> str:
    """A new database on the cluster (a copy of the migrated template, or empty)."""
    name = f"t{os.getpid()}_{next(_counter)}"
    template = TEMPLATE if migrated else "template0"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return cluster.url(name)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return new_database(pg_cluster)


@pytest.fixture(params=_stores())
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The `--db` value for a server under test: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "jobctl.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return new_database(cluster)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") and (
        "server_db" in metafunc.fixturenames
    ):
        metafunc.parametrize("server_db", _stores(), indirect=True)


@pytest.fixture
def server_db(request: pytest.FixtureRequest) -> str | None:
    """The database for `make_server`: None (the server's default SQLite file) unless the
    test is marked `both_stores` and this is its PostgreSQL run."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return new_database(request.getfixturevalue("pg_cluster"))
