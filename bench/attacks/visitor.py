#!/usr/bin/env python3
"""Another visitor, for bench/bench-abuse.sh's viewer attack: from 127.0.0.2 (the attacker is
127.0.0.1), GETs its own small file page back to back on one kept-alive connection, and asks
/readyz every 500 ms on another, for SECONDS.

Usage: visitor.py PORT COOKIE SECONDS

Prints one line: VISITOR requests=N p50=MS p99=MS max=MS failed=N ready=N not_ready=N
(a request that fails or takes over 10 s counts as failed; /readyz answers other than 200
count as not ready).
"""
import http.client
import sys
import threading
import time

port, cookie, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
SOURCE = ("127.0.0.2", 0)
deadline = time.monotonic() + seconds


def connection():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=SOURCE)


def pages(out):
    conn, times, failed = connection(), [], 0
    while time.monotonic() < deadline:
        asked = time.monotonic()
        try:
            conn.request("GET", "/action", headers={"Cookie": cookie})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or b"visitor line 10" not in body:
                failed += 1
            else:
                times.append((time.monotonic() - asked) * 1000)
        except OSError:
            failed += 1
            conn.close()
            conn = connection()
    out["times"], out["failed"] = times, failed


def ready(out):
    ok = bad = 0
    while time.monotonic() < deadline:
        try:
            conn = connection()
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
        except OSError:
            status = 0
        if status == 200:
            ok += 1
        else:
            bad += 1
        time.sleep(0.5)
    out["ready"], out["not_ready"] = ok, bad


seen, probes = {}, {}
threads = [threading.Thread(target=pages, args=(seen,)), threading.Thread(target=ready, args=(probes,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
times = sorted(seen["times"]) or [0.0]
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(
    f"VISITOR requests={len(seen['times'])} p50={pick(0.5):.2f} p99={pick(0.99):.2f} "
    f"max={times[-1]:.2f} failed={seen['failed']} ready={probes['ready']} not_ready={probes['not_ready']}"
)
