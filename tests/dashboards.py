"""The fleet's Grafana dashboards as data: the shared contract of the offline tests
(tests/unit/observability) and of the live check that evaluates every panel's query against a real
Prometheus.

panel_queries(path) gives (panel title, PromQL) for every target of every panel, rows' nested panels
included, with Grafana's template variables replaced by concrete values valid in PromQL.
dashboard_datasource_uids(path) gives every data source uid the dashboard refers to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "roles" / "grafana" / "files" / "dashboards"

# Grafana's built-in variables, as a query against Prometheus can take them.
BUILTIN_VALUES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def dashboard_paths():
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def all_panels(dashboard):
    """Every panel, those nested in (collapsed) rows included, rows themselves too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_values(dashboard):
    """A concrete value for each of the dashboard's template variables: the "All" value of a
    multi-value one (a regex, used with =~), else its current value."""
    values = dict(BUILTIN_VALUES)
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]
        elif var.get("multi") or var.get("includeAll"):
            values[var["name"]] = ".*"
        else:
            current = var.get("current", {}).get("value")
            values[var["name"]] = current if isinstance(current, str) and current else ".*"
    return values


def substitute(expr, values):
    def one(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError("unknown template variable $%s in %r" % (name, expr))
        return values[name]
    return _VARIABLE.sub(one, expr)


def _is_prometheus(datasource):
    return isinstance(datasource, dict) and datasource.get("type", "prometheus") == "prometheus"


def panel_queries(path):
    """(panel title, PromQL) for every Prometheus target of every panel, variables substituted."""
    dashboard = load(path)
    values = variable_values(dashboard)
    queries = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" not in target or not _is_prometheus(target.get("datasource", panel.get("datasource"))):
                continue
            queries.append((panel.get("title", ""), substitute(target["expr"], values)))
    return queries


def dashboard_datasource_uids(path):
    """Every data source uid the dashboard refers to (panels, targets, template variables)."""
    dashboard = load(path)
    uids = set()
    holders = list(all_panels(dashboard)) + dashboard.get("templating", {}).get("list", [])
    for holder in holders:
        for source in [holder.get("datasource")] + [t.get("datasource") for t in holder.get("targets", [])]:
            if isinstance(source, dict) and source.get("uid"):
                uids.add(source["uid"])
            elif isinstance(source, str) and source:
                uids.add(source)
    return uids
