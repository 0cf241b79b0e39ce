"""The .proto files are the contract: generated code is fresh, the package is
hostagent.v1, and every message, field, enum value, service and RPC is
documented."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = sorted((ROOT / "proto/hostagent/v1").glob("*.proto"))
_DECL_RE = re.compile(r"^\s*(message|enum|service|rpc)\s+(\w+)|^\s*(?:optional |repeated )?"
                      r"[\w.<>, ]*?(\w+)\s*=\s*\d+\s*;")


def test_generated_code_is_fresh(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run([sys.executable, str(ROOT / "scripts/gen_proto.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    checked_in = {p.relative_to(ROOT / "agent/gen"): p.read_bytes()
                  for p in (ROOT / "agent/gen/hostagent").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert set(fresh) == set(checked_in), "run: python scripts/gen_proto.py"
    stale = [str(p) for p in fresh if fresh[p] != checked_in[p]]
    assert not stale, f"stale generated files {stale}: run python scripts/gen_proto.py"


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_package_and_every_declaration_documented(proto):
    lines = proto.read_text().splitlines()
    assert "package hostagent.v1;" in lines
    undocumented = []
    for i, line in enumerate(lines):
        m = _DECL_RE.match(line)
        if not m or line.strip().startswith("//"):
            continue
        name = m.group(2) or m.group(3)
        if name.endswith("_UNSPECIFIED"):
            continue  # the zero value of an enum is documented by its enum
        if i == 0 or not lines[i - 1].strip().startswith("//"):
            undocumented.append(f"{proto.name}:{i + 1} {name}")
    assert not undocumented, undocumented


def test_enum_values_match_the_python_model():
    from agent.gen.hostagent.v1 import telemetry_pb2 as pb
    from agent.telemetry.events import Severity
    from agent.telemetry.model import MetricType
    from agent.telemetry.query import MatchOp

    assert {m.name: m.value for m in MetricType} == {
        n.removeprefix("METRIC_TYPE_"): v for n, v in pb.MetricType.items() if v}
    assert {m.name: m.value for m in Severity} == {
        n.removeprefix("SEVERITY_"): v for n, v in pb.Severity.items() if v}
    assert {m.name: m.value for m in MatchOp} == {
        n.removeprefix("MATCH_OP_"): v for n, v in pb.MatchOp.items() if v}
