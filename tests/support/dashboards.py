"""Read the Grafana boards and pull out every query they run.

Used by the static dashboard test (parse every PromQL expression with
promtool, check datasource uids and metric names) and meant to be reused by
the real-Prometheus and real-PostgreSQL checks: `promql_queries()` and
`sql_queries()` return every query with Grafana's variables and macros
already replaced, ready to send to a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"

Kind = Literal["promql", "sql"]

#: Values for Grafana's built-in variables when a query is evaluated outside Grafana.
BUILTIN_VALUES: Mapping[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "30d",
    "__range_s": "2592000",
    "__range_ms": "2592000000",
}

#: Values for the boards' own variables (override with real config names).
DEFAULT_VALUES: Mapping[str, str] = {
    "site": "site-00",
    "commitment": "email.reply",
    "source": "mystery",
    "out_of_hours": "phone.out_of_hours",
}


@dataclass(frozen=True)
class Query:
    """One query of one board, as written in the JSON."""

    dashboard: str  # uid
    where: str  # panel title, or "variable <name>"
    datasource_uid: str
    kind: Kind
    text: str

    def render(self, values: Mapping[str, str] | None = None) -> str:
        """The query with variables replaced (and, for SQL, the time macros)."""
        merged = {**DEFAULT_VALUES, **(values or {})}
        if self.kind == "sql":
            return render_sql(self.text, merged)
        return substitute(self.text, merged, quote=False)


# ---------------------------------------------------------------------------
# reading the boards


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def datasource_uid(ref: Any) -> str | None:
    if isinstance(ref, Mapping):
        return ref.get("uid")
    return ref  # legacy boards name the datasource by a string


def panel_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            uid = datasource_uid(target.get("datasource") or panel.get("datasource"))
            if "expr" in target:
                queries.append(Query(dashboard["uid"], panel["title"], uid, "promql", target["expr"]))
            elif "rawSql" in target:
                queries.append(Query(dashboard["uid"], panel["title"], uid, "sql", target["rawSql"]))
    return queries


def variable_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """PromQL inside query variables: `label_values(<selector>, label)`, `query_result(<expr>)`."""
    queries = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        raw = var.get("query")
        text = raw.get("query", "") if isinstance(raw, Mapping) else str(raw or "")
        expr = promql_of_variable(text)
        if expr:
            uid = datasource_uid(var.get("datasource"))
            queries.append(Query(dashboard["uid"], f"variable {var['name']}", uid, "promql", expr))
    return queries


def promql_of_variable(text: str) -> str | None:
    text = text.strip()
    match = re.fullmatch(r"label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", text, re.S)
    if match:
        return match.group(1).strip()
    match = re.fullmatch(r"query_result\((.+)\)", text, re.S)
    if match:
        return match.group(1).strip()
    return None  # label_names(), label_values(label) and metrics() hold no expression


def all_queries(directory: Path = DASHBOARD_DIR) -> list[Query]:
    queries = []
    for board in load_dashboards(directory).values():
        queries += panel_queries(board) + variable_queries(board)
    return queries


def promql_queries(directory: Path = DASHBOARD_DIR) -> list[Query]:
    return [q for q in all_queries(directory) if q.kind == "promql"]


def sql_queries(directory: Path = DASHBOARD_DIR) -> list[Query]:
    return [q for q in all_queries(directory) if q.kind == "sql"]


# ---------------------------------------------------------------------------
# Grafana variables and macros

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")


def substitute(text: str, values: Mapping[str, str], *, quote: bool) -> str:
    """Replace `$var`, `${var}`, `${var:format}` and `[[var]]` like Grafana does for one value.

    `sqlstring` (and every variable in SQL when `quote`) gives a quoted SQL
    literal; other formats give the raw value, which is what a single
    selection produces in PromQL. Unknown names are left alone.
    """
    merged = {**BUILTIN_VALUES, **values}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(5)
        fmt = match.group(2) or match.group(4)
        if name not in merged:
            return match.group(0)
        value = merged[name]
        if fmt == "sqlstring" or (quote and fmt is None and name in values):
            return "'" + value.replace("'", "''") + "'"
        return value

    return _VARIABLE.sub(replace, text)


def render_sql(sql: str, values: Mapping[str, str], start: datetime | None = None,
               end: datetime | None = None) -> str:
    """Expand the Grafana PostgreSQL macros the boards use, then the variables."""
    end = end or datetime.now(UTC)
    start = start or datetime.fromtimestamp(end.timestamp() - 30 * 86400, UTC)
    span = f"'{start.isoformat()}' AND '{end.isoformat()}'"
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m.group(1).strip()} BETWEEN {span}", sql)
    sql = sql.replace("$__timeFrom()", f"'{start.isoformat()}'").replace("$__timeTo()", f"'{end.isoformat()}'")
    return substitute(sql, values, quote=False)


# ---------------------------------------------------------------------------
# PromQL helpers

_FUNCTION_OR_KEYWORD = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical scan, enough for our boards)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or word.lower() in _FUNCTION_OR_KEYWORD:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or text[max(0, match.start() - 1)].isdigit():
            continue
        names.add(word)
    return names


# A gauge is taken once over the instances of a fleet (a figure from the database, a status, the config);
# a counter or a histogram is summed.  Written out lexically: the expression right before the metric.
_TAKEN_ONCE = re.compile(r"max\s*(?:without\s*\(\s*instance\s*\)|by\s*\((?![^)]*\binstance\b)[^)]*\))"
                         r"\s*\(\s*(?:last_over_time\s*\(\s*)?$")
_SUMMED = re.compile(r"sum\s*(?:(?:without|by)\s*\((?![^)]*\binstance\b)[^)]*\))?\s*\(\s*(?:increase|rate)\s*\(\s*$")


def fleet_problems(expr: str, gauges: set[str], counted: set[str]) -> list[str]:
    """Where `expr` would not give a fleet's value as one instance's: a gauge (series name in `gauges`)
    not taken with `max without (instance)` or `max by (...)` first, a counter or histogram series (in
    `counted`) not summed over `increase`/`rate`."""
    problems = []
    for match in re.finditer(r"\b(qualimon_\w+)", expr):
        name, before = match.group(1), expr[:match.start()]
        if name in gauges and not _TAKEN_ONCE.search(before):
            problems.append(f"{name} is not taken once over instances (max without (instance) / max by)")
        elif name in counted and not _SUMMED.search(before):
            problems.append(f"{name} is not summed over instances (sum ... (increase|rate(...)))")
    return problems


def rule_file(queries: list[Query], values: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Prometheus rule file with one recording rule per query, so `promtool check rules` parses them."""
    rules = [{"record": f"dashboard:query_{i}", "expr": q.render(values)} for i, q in enumerate(queries)]
    return {"groups": [{"name": "qualimon-dashboards", "rules": rules}]}
