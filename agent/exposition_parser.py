"""A strict parser of the Prometheus text exposition format (version 0.0.4),
the reading side of :mod:`agent.exposition`; used for node_exporter-style
textfiles (``agent.collectors.textfile``).

Accepted, line by line (``\\n``-separated, UTF-8):

- blank lines (spaces and tabs only);
- ``# HELP <name> <text>``, text escapes ``\\\\`` and ``\\n`` only;
- ``# TYPE <name> counter|gauge|histogram|summary|untyped``, before the
  family's first sample, once;
- other ``#`` lines (comments);
- samples: ``name[{label="value",...}] value [timestamp]``.  Names
  ``[a-zA-Z_:][a-zA-Z0-9_:]*``; label names ``[a-zA-Z_][a-zA-Z0-9_]*`` not
  starting ``__``, each once per sample; label value escapes ``\\\\``,
  ``\\"``, ``\\n``; a trailing comma is allowed; the value a decimal float,
  ``NaN`` or ``[+-]Inf``; the timestamp integer milliseconds.

Anything else (``\\r``, an unknown escape, a bad name, a second TYPE, text
after the timestamp) raises :class:`ParseError` with its line number.
Samples of one family need not be adjacent (node_exporter's parser accepts
that too).  ``name_bucket``/``_sum``/``_count`` samples join a family typed
histogram or summary.  Checking series (duplicates, types against values)
is the caller's job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BLANK = re.compile(r"[ \t]*")
_BLANKS = re.compile(r"[ \t]+")
_VALUE = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
                    r"|[nN][aA][nN]")
_TIMESTAMP = re.compile(r"-?\d{1,19}")
_LABEL_VALUE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_SUFFIXES = {"_bucket": ("histogram",), "_sum": ("histogram", "summary"),
             "_count": ("histogram", "summary")}


class ParseError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class Sample(NamedTuple):
    name: str  # as written: "rpc_seconds_bucket" for a histogram's bucket
    labels: tuple[tuple[str, str], ...]  # in written order
    value: float
    timestamp_ms: int | None
    line: int


@dataclass
class ParsedFamily:
    name: str
    type: str  # one of TYPES; "untyped" when no TYPE line
    help: str | None = None
    samples: list[Sample] = field(default_factory=list)
    typed: bool = False  # a TYPE line was given


def _unescape(text: str, allowed: str, line: int) -> str:
    def sub(m: re.Match) -> str:
        c = m.group(1)
        if c not in allowed:
            raise ParseError(line, f"invalid escape \\{c}")
        return "\n" if c == "n" else c
    return _ESCAPE.sub(sub, text) if "\\" in text else text


def _descriptor(rest: str, line: int) -> tuple[str, str, str]:
    """``HELP name text`` / ``TYPE name type`` -> (keyword, name, rest)."""
    keyword, tail = rest[:4], rest[4:].lstrip(" \t")
    m = METRIC_NAME.match(tail)
    if m is None:
        raise ParseError(line, f"{keyword}: invalid metric name in {tail[:80]!r}")
    after = tail[m.end():]
    if after and after[0] not in " \t":
        raise ParseError(line, f"{keyword}: invalid metric name {tail.split()[0][:80]!r}")
    return keyword, m.group(), after.lstrip(" \t")


def _labels(text: str, pos: int, line: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Parse ``{...}`` starting at ``text[pos] == "{"``; returns labels and the
    position after ``}``."""
    out: list[tuple[str, str]] = []
    pos = _BLANK.match(text, pos + 1).end()
    while text[pos:pos + 1] != "}":
        m = LABEL_NAME.match(text, pos)
        if m is None:
            raise ParseError(line, f"invalid label name at {text[pos:pos + 40]!r}")
        name = m.group()
        if name.startswith("__"):
            raise ParseError(line, f"label name {name!r} is reserved (starts with __)")
        if any(name == n for n, _ in out):
            raise ParseError(line, f"label {name!r} given twice")
        pos = _BLANK.match(text, m.end()).end()
        if text[pos:pos + 1] != "=":
            raise ParseError(line, f"expected = after label {name!r}")
        pos = _BLANK.match(text, pos + 1).end()
        v = _LABEL_VALUE.match(text, pos)
        if v is None:
            raise ParseError(line, f"label {name!r}: expected a quoted value")
        out.append((name, _unescape(v.group(1), '\\"n', line)))
        pos = _BLANK.match(text, v.end()).end()
        if text[pos:pos + 1] == ",":
            pos = _BLANK.match(text, pos + 1).end()
        elif text[pos:pos + 1] != "}":
            raise ParseError(line, "expected , or } after a label")
    return tuple(out), pos + 1


def _sample(text: str, line: int) -> Sample:
    m = METRIC_NAME.match(text)
    if m is None:
        raise ParseError(line, f"invalid metric name at {text[:80]!r}")
    pos = _BLANK.match(text, m.end()).end()
    labels: tuple[tuple[str, str], ...] = ()
    if text[pos:pos + 1] == "{":
        labels, pos = _labels(text, pos, line)
    tokens = _BLANKS.split(text[pos:].strip(" \t"))
    if not tokens[0] or len(tokens) > 2 or (pos == m.end() and text[pos:pos + 1] not in " \t"):
        raise ParseError(line, f"expected: name[{{labels}}] value [timestamp], got {text[:120]!r}")
    if not _VALUE.fullmatch(tokens[0]):
        raise ParseError(line, f"invalid value {tokens[0][:40]!r}")
    timestamp = None
    if len(tokens) == 2:
        if not _TIMESTAMP.fullmatch(tokens[1]) or not -2**63 <= int(tokens[1]) < 2**63:
            raise ParseError(line, f"invalid timestamp {tokens[1][:40]!r}")
        timestamp = int(tokens[1])
    return Sample(m.group(), labels, float(tokens[0]), timestamp, line)


def parse_text(text: str) -> list[ParsedFamily]:
    """Families in order of first appearance.  Raises :class:`ParseError`."""
    families: dict[str, ParsedFamily] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        if "\r" in raw or "\0" in raw:
            raise ParseError(number, "carriage return or NUL in line")
        line = raw.lstrip(" \t")
        if not line:
            continue
        if line.startswith("#"):
            rest = line[1:].lstrip(" \t")
            if not rest.startswith(("HELP ", "HELP\t", "TYPE ", "TYPE\t")):
                continue  # a comment
            keyword, name, tail = _descriptor(rest, number)
            family = families.get(name)
            if keyword == "HELP":
                family = family or families.setdefault(name, ParsedFamily(name, "untyped"))
                if family.help is not None:
                    raise ParseError(number, f"second HELP line for {name}")
                family.help = _unescape(tail, "\\n", number)
                continue
            kind = tail.strip(" \t")
            if kind not in TYPES:
                raise ParseError(number, f"TYPE {name}: unknown type {kind[:40]!r}")
            family = family or families.setdefault(name, ParsedFamily(name, "untyped"))
            if family.typed:
                raise ParseError(number, f"second TYPE line for {name}")
            if family.samples:
                raise ParseError(number, f"TYPE line for {name} after its samples")
            family.type, family.typed = kind, True
            continue
        sample = _sample(line, number)
        _family_of(families, sample.name).samples.append(sample)
    return list(families.values())


def _family_of(families: dict[str, ParsedFamily], name: str) -> ParsedFamily:
    family = families.get(name)
    if family is not None:
        return family
    for suffix, kinds in _SUFFIXES.items():
        if name.endswith(suffix):
            base = families.get(name[: -len(suffix)])
            if base is not None and base.type in kinds:
                return base
    return families.setdefault(name, ParsedFamily(name, "untyped"))
