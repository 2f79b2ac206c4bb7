#!/usr/bin/env python3
"""Checks docs/operations/grafana-dashboard.json against Grafana's dashboard schema, as Grafana
Labs generate it into grafana-foundation-sdk (the Grafana 11.6 flavour, pinned in .ci/run): the
dashboard is read into the SDK's Dashboard model and written back, and every key it holds must
come back with its value. A key the schema does not know (at the top, in a panel, a target, a
grid position, …) is dropped by the model, and a value of the wrong shape changes, so either
fails the check. Exits 1 naming each difference."""

import json
import sys

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

PATH = sys.argv[1] if len(sys.argv) > 1 else "docs/operations/grafana-dashboard.json"


def differences(ours, theirs, path=""):
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key, value in ours.items():
            if key not in theirs:
                yield f"{path}/{key}: not in Grafana's dashboard schema"
            else:
                yield from differences(value, theirs[key], f"{path}/{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            yield f"{path}: {len(ours)} items read back as {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            yield from differences(a, b, f"{path}[{i}]")
    elif ours != theirs:
        yield f"{path}: {ours!r} read back as {theirs!r}"


# The panel kinds' options and field configs, and the Prometheus query's fields, are typed only
# once their plugins are registered.
register_default_plugins()
dashboard = json.load(open(PATH))
read_back = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
found = list(differences(dashboard, read_back))
for line in found:
    print(line)
panels = len(read_back.get("panels") or [])
if found:
    sys.exit(1)
print(f"{PATH}: {panels} panels, every key and value read back by Grafana's dashboard model")
