"""PostgreSQL is an extra (`pip install 'jobctl[postgres]'`): without it, SQLite works and a
postgresql:// URL is one clear line and exit 2, not a traceback."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # as on a machine without the extra: `import psycopg` fails
from jobctl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_psycopg(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_postgresql_url_without_the_extra_says_what_to_install() -> None:
    proc = run_without_psycopg(
        "server", "run", "--port", "0", "--db", "postgresql://jobctl@127.0.0.1:9/nowhere"
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'jobctl[postgres]'" in lines[0]


SQLITE_SERVER_WITHOUT_PSYCOPG = """
import asyncio, sys
sys.modules["psycopg"] = None
from jobctl.server.main import build
from jobctl.server.settings import ServerSettings

async def main() -> None:
    store = build(ServerSettings(port=0)).engine.store
    await store.open()
    await store.close()
    print(store.description if hasattr(store, "description") else type(store).__name__)

asyncio.run(main())
"""


def test_the_sqlite_server_needs_no_psycopg() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SQLITE_SERVER_WITHOUT_PSYCOPG],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "postgres" not in proc.stdout.lower(), proc.stdout
