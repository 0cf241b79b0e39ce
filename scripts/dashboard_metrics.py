#!/usr/bin/env python3
"""Lists the metric names a Grafana dashboard's PromQL uses.

    python scripts/dashboard_metrics.py node-exporter-full.json > names.txt

Walks the whole JSON (panels, rows' nested panels, templating): every
``expr`` of a target and every ``query``/``definition`` of a query variable
(``label_values(node_uname_info{job="$job"}, instance)``).  A name is an
identifier that is not a PromQL function, keyword, aggregation modifier or
label name: strings, label matchers (``{...}``), ranges (``[...]``) and the
label lists of ``by``/``without``/``on``/``ignoring``/``group_left``/
``group_right`` are removed first.  No PromQL parser is needed for that; the
test ``tests/test_dashboard_metrics.py`` holds it to hand-checked expressions.

The name list of Node Exporter Full (Grafana 1860) is kept as a fixture,
``tests/fixtures/dashboards/node-exporter-full.names`` (facts only, not the
dashboard), with where it came from in its header.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Iterator

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month",
    "delta", "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta",
    "increase", "irate", "label_join", "label_replace", "label_values", "last_over_time", "ln",
    "log10", "log2", "max_over_time", "min_over_time", "minute", "month", "predict_linear",
    "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "time",
    "timestamp", "vector", "year", "query_result", "metrics",
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "count_values", "stddev", "stdvar", "topk",
                "bottomk", "quantile", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def names_in(expr: str) -> set[str]:
    """Metric names in one PromQL expression (Grafana variables allowed)."""
    text = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    text = _MATCHERS.sub(" ", _STRING.sub('""', text))
    text = _LABEL_LIST.sub(" ", _RANGE.sub(" ", text))
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # other Grafana variables
    out = set()
    for match in _IDENT.finditer(text):
        word = match.group()
        rest = text[match.end():].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):
            continue  # a function or aggregation call
        if word in FUNCTIONS or word in AGGREGATIONS:
            continue
        if re.fullmatch(r"\d+[smhdwy]?", word) or match.start() and text[match.start() - 1].isdigit():
            continue  # a number (1e6) or a duration
        out.add(word)
    return out


def queries(node: object) -> Iterator[str]:
    """Every PromQL text in a dashboard JSON tree."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        if node.get("type") == "query":  # a template variable
            query = node.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            for text in (query, node.get("definition")):
                if isinstance(text, str) and text:
                    yield text
        for value in node.values():
            yield from queries(value)
    elif isinstance(node, list):
        for value in node:
            yield from queries(value)


def dashboard_names(dashboard: object) -> set[str]:
    names: set[str] = set()
    for text in queries(dashboard):
        found = _LABEL_VALUES.findall(text)
        names.update(found if found else names_in(text))
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        dashboard = json.load(f)
    for name in sorted(dashboard_names(dashboard)):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
