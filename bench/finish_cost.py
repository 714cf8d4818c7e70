"""What finishing a job costs in SQLite, and which schema objects make it so.

    python bench/finish_cost.py PATH/TO/jobctl.db      # a copy is used; the file is untouched

Copies a jobctl SQLite database, marks up to 5,000 of its jobs running, and times (process
CPU) the engine's finishing UPDATE and its commit, one job a transaction, four ways: the
schema as it is, without the stats rollup triggers (migrations 0006/0008), without the
jobs table's indexes, and without either; and the schema as it is with SQLite's default
temp_store (files), as the writer had it before: a statement that fires a trigger keeps
a statement journal, and with temp files on disk SQLite created, wrote and unlinked one
in every finishing transaction. Written to attribute the run-throughput regression that
`bench/engine.py` showed on a quiet machine (#15).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def drop(conn: sqlite3.Connection, kind: str) -> None:
    where = (
        "type='trigger'"
        if kind == "trigger"
        else "type='index' AND tbl_name='jobs' AND sql IS NOT NULL"
    )
    for (name,) in conn.execute(f"SELECT name FROM sqlite_master WHERE {where}").fetchall():
        conn.execute(f"DROP {kind.upper()} {name}")


def measure(
    source: Path, label: str, prepare: Callable[[sqlite3.Connection], None], temp: str = "MEMORY"
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "copy.db"
        shutil.copy(source, db)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA temp_store={temp}")  # MEMORY: as the server's writer has it
        prepare(conn)
        ids = [r[0] for r in conn.execute("SELECT id FROM jobs LIMIT 5000")]
        conn.execute(
            "UPDATE jobs SET status = 'running', completed_at = NULL WHERE id IN"
            " (SELECT id FROM jobs LIMIT 5000)"
        )
        start = time.process_time()
        for job_id in ids:
            now = time.time_ns() // 1000
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE jobs SET status = 'completed', progress = 100, completed_at = ?,"
                " updated_at = ?, lease_owner = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND status = 'running'",
                (now, now, job_id),
            )
            conn.execute("COMMIT")
        per = (time.process_time() - start) / max(1, len(ids)) * 1e6
        conn.close()
    print(f"{label:<22} {per:7.0f} us CPU per finish ({len(ids)} jobs)")


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit("usage: python bench/finish_cost.py PATH/TO/jobctl.db")
    source = Path(sys.argv[1])
    measure(source, "schema as it is", lambda c: None)
    measure(source, "as it is, temp files", lambda c: None, temp="DEFAULT")
    measure(source, "no rollup triggers", lambda c: drop(c, "trigger"))
    measure(source, "no jobs indexes", lambda c: drop(c, "index"))
    measure(source, "neither", lambda c: (drop(c, "trigger"), drop(c, "index")))


if __name__ == "__main__":
    main()
