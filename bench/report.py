"""The markdown report of bench/bench.sh: medians of the rounds per cell, the ratios its
targets are stated in, and (with a baseline binary) each textdrop cell against the baseline's,
measured in the same run."""
import collections
import datetime
import os
import statistics
import sys

path, rounds, xmin_note, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cells = collections.defaultdict(list)
for line in open(path):
    parts = line.split()
    round_, load, system = parts[0], parts[1], parts[2]
    fields = dict(p.split("=", 1) for p in parts[3:])
    fields["round"] = round_
    cells[(load, system)].append(fields)

STORES = ["sqlite", "postgres", "mysql", "redis", "cluster"]
CACHED = ["sqlite", "postgres", "mysql"]
systems = (STORES + [f"base_{s}" for s in STORES] + [f"cached_{s}" for s in CACHED]
           + ["memory", "tower", "actix_redis"])
ceilings = ["pgbench", "mysqlslap", "sqlite_loop"]
names = {"sqlite": "textdrop / SQLite", "postgres": "textdrop / PostgreSQL",
         "mysql": "textdrop / MariaDB", "redis": "textdrop / Redis",
         "cluster": "textdrop / Redis Cluster (3 masters)",
         "memory": "textdrop / in-memory records (web ceiling)",
         "tower": "tower-sessions + sqlx / PostgreSQL", "actix_redis": "actix-session RedisSessionStore",
         "pgbench": "pgbench, same statements", "mysqlslap": "mysqlslap, same statements",
         "sqlite_loop": "sqlite-loop, same statements"}
for s in STORES:
    names[f"base_{s}"] = names[s].replace("textdrop", "baseline textdrop")
for s in CACHED:
    names[f"cached_{s}"] = names[s].replace("textdrop", "textdrop, read cache on")


def values(load, system, key="rps"):
    return [float(f[key]) for f in cells[(load, system)] if f.get(key) not in (None, "", "-")]


def med(load, system, key="rps"):
    vals = values(load, system, key)
    return statistics.median(vals) if vals else float("nan")


print("## Request throughput against peers\n")
print(f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; wrk -t2 -c32, "
      f"{duration} a cell, {rounds} rounds interleaved, medians of rounds. Command: `bash bench/bench.sh`.\n")
print("| workload | system | requests/s | p50 ms | p99 ms | non-2xx/3xx | wrong | errors | peak RSS MiB | rows before/after |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for load in ["R", "RM", "WM", "N"]:
    for system in systems + ceilings:
        runs = cells.get((load, system))
        if not runs:
            continue
        if system in ceilings:
            print(f"| {load} | {names[system]} | {med(load, system):.0f} | | | | | | | |")
            continue
        wrong = sum(int(f.get("wrong", 0)) for f in runs)
        non23 = sum(int(f.get("non23", 0)) for f in runs)
        errors = sum(int(f.get("errors", 0)) for f in runs)
        sql = system.removeprefix("base_").removeprefix("cached_") in ("sqlite", "postgres", "mysql")
        rows = " ".join(f.get("rows", "-") for f in runs) if load in ("WM", "N") and sql else ""
        print(f"| {load} | {names[system]} | {med(load, system):.0f} | {med(load, system, 'p50'):.2f} | "
              f"{med(load, system, 'p99'):.2f} | {non23} | {wrong} | {errors} | {max(float(f['rss']) for f in runs):.1f} | {rows} |")


def ratio(label, a, b, target):
    print(f"| {label} | {a / b:.2f} | {target} |")


def per_round(load, a, b):
    """a / b in each round, as text."""
    by_round = {f["round"]: float(f["rps"]) for f in cells[(load, b)]}
    out = [float(f["rps"]) / by_round[f["round"]] for f in cells[(load, a)] if f["round"] in by_round]
    return ", ".join(f"{r:.2f}" for r in out) if out else "-"


print("\n### Ratios (medians, same run)\n")
print("| ratio | value | target |")
print("| --- | --- | --- |")
for load in ["R", "RM"]:
    ratio(f"{load}: PostgreSQL / tower-sessions", med(load, "postgres"), med(load, "tower"), "≥ 1.0")
    print(f"| {load}: PostgreSQL / tower-sessions, each round | {per_round(load, 'postgres', 'tower')} | ≥ 1.0 in every round |")
ratio("R: MariaDB / PostgreSQL", med("R", "mysql"), med("R", "postgres"), "≥ 0.9")
ratio("R: SQLite / actix-session Redis", med("R", "sqlite"), med("R", "actix_redis"), "≥ 0.8")
ratio("R: SQLite / in-memory records", med("R", "sqlite"), med("R", "memory"), "(context)")
ratio("WM: PostgreSQL / tower-sessions", med("WM", "postgres"), med("WM", "tower"), "(context)")
ratio("N: PostgreSQL / tower-sessions", med("N", "postgres"), med("N", "tower"), "(context)")
ratio("WM: PostgreSQL / pgbench", med("WM", "postgres"), med("WM", "pgbench"), "(context)")
ratio("WM: SQLite / sqlite-loop", med("WM", "sqlite"), med("WM", "sqlite_loop"), "(context)")
ratio("WM: MariaDB / mysqlslap", med("WM", "mysql"), med("WM", "mysqlslap"), "(context)")
for load in ["R", "N"]:
    ratio(f"{load}: MariaDB / mysqlslap", med(load, "mysql"), med(load, "mysqlslap"), "(context)")
    ratio(f"{load}: PostgreSQL / pgbench", med(load, "postgres"), med(load, "pgbench"), "(context)")
    ratio(f"{load}: Redis Cluster / single Redis", med(load, "cluster"), med(load, "redis"), "(context)")
    ratio(f"{load}: Redis / actix-session Redis", med(load, "redis"), med(load, "actix_redis"), "(context)")

if any(cells.get((load, f"base_{s}")) for load in ["R", "RM", "WM", "N"] for s in STORES):
    print("\n### This binary against the baseline binary (same run)\n")
    print("| workload | storage | this / baseline req/s | p99 ms this / baseline | peak RSS MiB this / baseline |")
    print("| --- | --- | --- | --- | --- |")
    for load in ["R", "RM", "WM", "N"]:
        for s in STORES:
            if not cells.get((load, s)) or not cells.get((load, f"base_{s}")):
                continue
            rss = lambda system: max(float(f["rss"]) for f in cells[(load, system)])
            print(f"| {load} | {s} | {med(load, s) / med(load, f'base_{s}'):.2f} "
                  f"({med(load, s):.0f} / {med(load, f'base_{s}'):.0f}) | "
                  f"{med(load, s, 'p99'):.2f} / {med(load, f'base_{s}', 'p99'):.2f} | "
                  f"{rss(s):.1f} / {rss(f'base_{s}'):.1f} |")

if any(cells.get((load, f"cached_{s}")) for load in ["R", "RM", "WM", "N"] for s in CACHED):
    print("\n### Read cache on against off (same binary, same run)\n")
    print("| workload | storage | on / off req/s | p99 ms on / off | on / tower-sessions |")
    print("| --- | --- | --- | --- | --- |")
    for load in ["R", "RM", "WM", "N"]:
        for s in CACHED:
            if not cells.get((load, s)) or not cells.get((load, f"cached_{s}")):
                continue
            tower = (f"{med(load, f'cached_{s}') / med(load, 'tower'):.2f}"
                     if s == "postgres" and cells.get((load, "tower")) else "")
            print(f"| {load} | {s} | {med(load, f'cached_{s}') / med(load, s):.2f} "
                  f"({med(load, f'cached_{s}'):.0f} / {med(load, s):.0f}) | "
                  f"{med(load, f'cached_{s}', 'p99'):.2f} / {med(load, s, 'p99'):.2f} | {tower} |")

print(f"\nPostgreSQL rows' xmin and expiry across the read workloads: {xmin_note}.")
