#!/usr/bin/env python3
"""Import cycles between a crate's modules, from the `crate::` paths each file names.

Usage: python3 scripts/module-cycles.py [SRC_DIR] [DEPTH]

A file's module is its path under src/ (src/backends/postgres/records.rs is
backends::postgres::records; a mod.rs is its folder). Every `crate::a::b::…` path the file
names, in a `use` or inline, is an edge to the module it lands in, cut at DEPTH segments
(default 2: backends::postgres, session::store). A module's edges to its own ancestors or
descendants are not counted (a parent re-exports its children). Prints each strongly connected
component of more than one module and exits 1 if there is any, else prints "no import cycle".
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def module_of(path: pathlib.Path) -> tuple:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


modules = {module_of(p): p for p in src.rglob("*.rs")}
known = set(modules)


def land(segments: list) -> tuple:
    """The longest known module prefix of a crate path."""
    for n in range(len(segments), 0, -1):
        if tuple(segments[:n]) in known:
            return tuple(segments[:n])
    return ()


def cut(module: tuple) -> tuple:
    return module[:depth]


def braces(text: str, start: int) -> str:
    """The text of a `{…}` group starting at `start`, nested groups included."""
    level = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            level += 1
        elif text[i] == "}":
            level -= 1
            if level == 0:
                return text[start + 1 : i]
    return ""


def paths(text: str):
    """Every crate path a file names, with `use crate::{a::b, c}` groups expanded."""
    for m in re.finditer(r"crate((?:::\w+)+)(::\{)?", text):
        head = [s for s in m.group(1).split("::") if s]
        if m.group(2):
            group = braces(text, m.end() - 1)
            for item in re.split(r",(?![^{]*\})", group):
                item = item.strip()
                if item:
                    yield head + [s for s in re.split(r"::|\{", item) if s and s.isidentifier()]
        else:
            yield head


edges = {}
for module, path in modules.items():
    text = re.sub(r"//[^\n]*", "", path.read_text())
    here = cut(module)
    for segments in paths(text):
        there = cut(land(segments))
        if not there or there == here:
            continue
        if here[: len(there)] == there or there[: len(here)] == here:
            continue
        edges.setdefault(here, set()).add(there)

# Tarjan's strongly connected components.
index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        comps.append(comp)


for v in sorted({cut(m) for m in modules}):
    if v not in index:
        visit(v)

cycles = [c for c in comps if len(c) > 1]
for c in cycles:
    names = sorted("::".join(m) or "crate" for m in c)
    print("cycle:", " <-> ".join(names))
    for m in sorted(c):
        print("   ", "::".join(m), "->", ", ".join(sorted("::".join(t) for t in edges.get(m, ()) if t in c)))
if not cycles:
    print(f"no import cycle between the {len({cut(m) for m in modules})} modules of depth {depth}")
sys.exit(1 if cycles else 0)
