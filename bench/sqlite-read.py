"""How long SQLite takes to read one session row whose stored file is N bytes (default 16 KiB,
the most textdrop reads on the worker's thread), from the page cache, through Python's sqlite3
(so the figure is an upper bound on SQLite's own time): `python3 bench/sqlite-read.py [BYTES]`.
Prints the median and the 99th percentile of 20,000 reads, in microseconds."""

import os
import sqlite3
import statistics
import sys
import tempfile
import time

size = int(sys.argv[1]) if len(sys.argv) > 1 else 16 * 1024
with tempfile.TemporaryDirectory() as tmp:
    db = sqlite3.connect(os.path.join(tmp, "read.db"))
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, state TEXT, expires_at TIMESTAMP, "
        "created_at TIMESTAMP, file TEXT, file_bytes BIGINT)"
    )
    file = os.urandom(size * 3 // 4).hex()[:size]
    for n in range(1000):
        db.execute(
            "INSERT INTO sessions VALUES (?, 's1.state', '2099-01-01', '2026-01-01', ?, ?)",
            (f"{n:064x}", file, size),
        )
    db.commit()
    query = (
        "SELECT state, expires_at, created_at, CASE WHEN file_bytes <= 16384 THEN file END, "
        "file_bytes FROM sessions WHERE id = ? AND expires_at > '2026-12-06'"
    )
    times = []
    for n in range(20000):
        key = f"{n % 1000:064x}"
        start = time.perf_counter_ns()
        row = db.execute(query, (key,)).fetchone()
        times.append((time.perf_counter_ns() - start) / 1000)
        assert row[3] is None or len(row[3]) == size
    times.sort()
    print(
        f"{size} bytes: median {statistics.median(times):.1f} us, "
        f"p99 {times[int(len(times) * 0.99)]:.1f} us"
    )
