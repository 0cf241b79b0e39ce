"""Values, labels, tables and JSON for people.

Text output: integers as integers, bytes and large numbers shortened
(``24.1 GB``, ``3.2M``; ``--raw`` prints every digit), timestamps as UTC
times, labels with an empty value left out (Prometheus reads an empty label
as an absent one).  JSON output: protobuf's JSON mapping, except that
integers are JSON integers: 64-bit fields, which the mapping writes as
strings, and whole doubles (``5``, not ``5.0``).
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_PREFIXES = ("", "k", "M", "G", "T", "P", "E")
_EXACT_BELOW = 1e6  # whole numbers below this print in full
_INT_TYPES = (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)
_FLOAT_TYPES = (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT)
_JSON_VALUE_TYPES = ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue")


def is_bytes(name: str, unit: str = "") -> bool:
    return unit == "bytes" or name.endswith(("_bytes", "_bytes_total"))


def is_timestamp(name: str) -> bool:
    """Unix times by Prometheus naming (``*_timestamp_seconds``,
    ``process_start_time_seconds``, ``node_boot_time_seconds``)."""
    return name.endswith(("_timestamp_seconds", "_time_seconds"))


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def _shorten(value: float, unit: str) -> str:
    """``24_100_000_000, "B"`` -> ``24.1 GB``; ``3_200_000, ""`` -> ``3.2M``."""
    scaled, i = abs(value), 0
    while round(scaled, 1) >= 1000 and i < len(_PREFIXES) - 1:
        scaled /= 1000
        i += 1
    sign = "-" if value < 0 else ""
    return f"{sign}{scaled:.1f}{' ' + _PREFIXES[i] + unit if unit else _PREFIXES[i]}"


def number(value: float, raw: bool = False) -> str:
    """A unitless number: whole numbers in full below a million (every digit
    with ``raw``), larger ones shortened, fractions to 6 significant digits
    (``raw``: the shortest exact form)."""
    special = _special(value)
    if special:
        return special
    if value.is_integer() and (raw or abs(value) < _EXACT_BELOW):
        return str(int(value))
    if raw:
        return repr(value)
    if abs(value) >= _EXACT_BELOW:
        return _shorten(value, "")
    return f"{value:.6g}"


def metric_value(v: float, name: str, unit: str = "", raw: bool = False,
                 per_second: bool = False) -> str:
    """A sample's value (or its rate, ``per_second``) in the family ``name``."""
    if raw or _special(v):
        text = number(v, raw)
    elif is_bytes(name, unit):
        text = f"{number(v)} B" if abs(v) < 1000 else _shorten(v, "B")
    elif is_timestamp(name) and not per_second and v > 0:
        return utc(v)
    else:
        text = number(v)
    return text + "/s" if per_second else text


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels(pairs: Mapping[str, str]) -> str:
    """``{a="1",b="2"}``, sorted, without empty values; ``""`` when none is left."""
    shown = [f'{k}="{v}"' for k, v in sorted(pairs.items()) if v]
    return "{" + ",".join(shown) + "}" if shown else ""


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


# -- JSON ------------------------------------------------------------------
def whole(obj: Any) -> Any:
    """Whole floats in plain data (dicts, lists) to ints, recursively."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {k: whole(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [whole(v) for v in obj]
    return obj


def message_to_dict(msg: Message) -> dict:
    """protobuf's JSON mapping (field names as in the .proto, every field
    shown), with integers as JSON integers."""
    doc = json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    if msg.DESCRIPTOR.full_name in _JSON_VALUE_TYPES:
        return whole(doc)
    _fix_message(msg.DESCRIPTOR, doc)
    return doc


def _fix_message(descriptor, doc: dict) -> None:
    for name, item in doc.items():
        field = descriptor.fields_by_name.get(name)
        if field is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key in item:
                item[key] = _fix_value(value_field, item[key])
        elif field.is_repeated:
            doc[name] = [_fix_value(field, v) for v in item]
        else:
            doc[name] = _fix_value(field, item)


def _fix_value(field, item: Any) -> Any:
    if field.message_type is not None:
        full_name = field.message_type.full_name
        if full_name in _JSON_VALUE_TYPES:
            return whole(item)
        if isinstance(item, dict) and not full_name.startswith("google.protobuf."):
            _fix_message(field.message_type, item)
        return item
    if field.cpp_type in _INT_TYPES and isinstance(item, str):
        return int(item)
    if field.cpp_type in _FLOAT_TYPES and isinstance(item, float) and item.is_integer():
        return int(item)
    return item


def print_json(obj: Message | dict) -> None:
    doc = message_to_dict(obj) if isinstance(obj, Message) else whole(obj)
    print(json.dumps(doc, indent=2))
