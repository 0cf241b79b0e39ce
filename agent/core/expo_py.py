"""Pure-Python twin of the exposition kernels in ``ext/_expo.pyx``.

This file is the specification: the Cython module must write byte-identical
text for every input (``tests/test_exposition_kernel.py`` holds them to it).

A block's text is laid out once per layout by the caller (the ``prepare_*``
helpers below, shared by both implementations) as flat blobs:

- ``headers`` holds each family's ``# HELP``/``# TYPE`` lines, family ``f``
  at ``headers[header_off[f]:header_off[f + 1]]``;
- ``order`` lists the series in render order (families by name, series by
  labels), family ``f`` owning ``order[fam_start[f]:fam_start[f + 1]]``;
- ``prefixes`` holds each series' ``name{labels} `` text in that same order,
  entry ``j`` at ``prefixes[prefix_off[j]:prefix_off[j + 1]]``.

``render_families`` then writes, per family, its header and one line per
series whose value is not NaN (NaN: no sample yet), into ``out`` from
offset 0; a family without any such line is left out entirely.
"""
from __future__ import annotations


# The longest text format_value writes ("-2.2250738585072014e-308") and the
# newline: what render_families reserves per series.
VALUE_MAX = 25
# gzip member of a deflate stream: level 1 (see docs/architecture.md "/metrics").
GZIP_LEVEL = 1


def format_value(v: float) -> str:
    """Prometheus' text for a sample value: Python's shortest round-trip
    ``repr`` for finite values, ``+Inf``/``-Inf``/``NaN`` otherwise."""
    if v - v == 0.0:  # finite
        return repr(v)
    if v != v:
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


def escape_help(text: str, openmetrics: bool = False) -> str:
    """HELP text: backslash and newline escaped; OpenMetrics also escapes ``"``."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_name(name: str, counter: bool, openmetrics: bool) -> str:
    """The name HELP/TYPE lines carry: an OpenMetrics counter family is named
    without its samples' ``_total`` suffix."""
    return name[:-len("_total")] if openmetrics and counter else name


def header(name: str, counter: bool, help_text: str, openmetrics: bool = False) -> bytes:
    fam = family_name(name, counter, openmetrics)
    kind = "counter" if counter else "gauge"
    return (f"# HELP {fam} {escape_help(help_text, openmetrics)}\n"
            f"# TYPE {fam} {kind}\n").encode()


def prefix(name: str, label_names: tuple[str, ...], labels: tuple[str, ...]) -> bytes:
    """``name{k="v",...} `` (or ``name `` without labels) of one series."""
    if not labels:
        return f"{name} ".encode()
    pairs = ",".join(f'{k}="{escape_label(v)}"' for k, v in zip(label_names, labels))
    return f"{name}{{{pairs}}} ".encode()


def render_bound(headers_len: int, prefixes_len: int, series: int) -> int:
    """Bytes ``out`` needs for any values: every header, prefix and value."""
    return headers_len + prefixes_len + series * VALUE_MAX


def _check_offsets(name: str, off, count: int, blob_len: int) -> None:
    if len(off) != count + 1:
        raise ValueError(f"{name} has {len(off)} entries, needs {count + 1}")
    if off[0] < 0 or off[count] > blob_len:
        raise ValueError(f"{name} runs outside its blob of {blob_len} bytes")
    for k in range(count):
        if off[k + 1] < off[k]:
            raise ValueError(f"{name} decreases at entry {k + 1}")


def render_families(values, order, fam_start, prefixes, prefix_off, headers, header_off,
                    out, spans) -> int:
    """Write the text of the families into ``out``; return its length.

    ``spans`` gets ``F + 1`` offsets: family ``f``'s text is
    ``out[spans[f]:spans[f + 1]]`` (empty when it has no value).  Raises
    ValueError, before writing, when the offsets are inconsistent, an
    ``order`` entry is not a series of ``values``, ``spans`` is shorter than
    ``F + 1`` or ``out`` is shorter than :func:`render_bound`.
    """
    n, m = len(values), len(order)
    families = len(fam_start) - 1
    if families < 0:
        raise ValueError("fam_start needs at least one entry")
    if fam_start[0] != 0 or fam_start[families] != m:
        raise ValueError(f"fam_start must run from 0 to len(order) = {m}")
    for f in range(families):
        if fam_start[f + 1] < fam_start[f]:
            raise ValueError(f"fam_start decreases at entry {f + 1}")
    _check_offsets("header_off", header_off, families, len(headers))
    _check_offsets("prefix_off", prefix_off, m, len(prefixes))
    for j in range(m):
        if not 0 <= order[j] < n:
            raise ValueError(f"order[{j}] = {order[j]} is not a series: needs 0 <= i < {n}")
    if len(spans) < families + 1:
        raise ValueError(f"spans has {len(spans)} entries, needs {families + 1}")
    need = render_bound(header_off[families] - header_off[0], prefix_off[m] - prefix_off[0], m)
    if len(out) < need:
        raise ValueError(f"out has {len(out)} bytes, needs {need}")

    pos = 0
    for f in range(families):
        spans[f] = start = pos
        text = bytes(headers[header_off[f]:header_off[f + 1]])
        out[pos:pos + len(text)] = text
        pos += len(text)
        wrote = False
        for j in range(fam_start[f], fam_start[f + 1]):
            v = values[order[j]]
            if v != v:
                continue
            line = bytes(prefixes[prefix_off[j]:prefix_off[j + 1]]) + format_value(v).encode() + b"\n"
            out[pos:pos + len(line)] = line
            pos += len(line)
            wrote = True
        if not wrote:
            pos = start
    spans[families] = pos
    return pos

