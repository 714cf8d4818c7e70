"""A process that only LISTENs to jobctl's change channel and reads what arrives.

bench/pg_engine.py --bare-listeners runs one server beside such processes: the least
that each more server must do (hear every change), so that what three servers cost on
top of one can be split into hearing and the rest. It reads as the server's listener
does, gathering notifications for LINGER when they come fast, but with blocking I/O
and nothing done with what it reads.

    python bench/bare_listener.py postgresql://... READY_FILE
"""

from __future__ import annotations

import select
import sys
import time
from pathlib import Path

import psycopg

from jobctl.server.store.postgres import CHANNEL, LINGER, LINGER_AFTER


def main() -> int:
    url, ready = sys.argv[1], Path(sys.argv[2])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        ready.write_text("listening")
        pgconn = conn.pgconn
        last = 0.0
        while True:  # until SIGTERM
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
            note = pgconn.notifies()
            while note is not None:
                note = pgconn.notifies()
            now = time.monotonic()
            if now - last < LINGER_AFTER:
                time.sleep(LINGER)
            last = now


if __name__ == "__main__":
    raise SystemExit(main())
