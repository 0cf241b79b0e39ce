"""A short seeded fuzz of every method of every service the contract
declares (the generated descriptors, health and reflection), against the
real agent process, over plaintext loopback (viewer) and the unix socket
(admin, so calls reach the servicers): undecodable bytes, mutated encodings,
and valid messages with hostile values (huge strings, extreme numbers,
Durations out of range, enums out of range).  No answer may be INTERNAL or
UNKNOWN, no unary call may hang, and the agent must still serve afterwards.

With no ``[bmc]`` targets, a mutating BMC call with any target is answered
NOT_FOUND (or INVALID_ARGUMENT) before anything runs; no operation exists, so
CancelOperation finds nothing to cancel.
"""
import collections
import importlib
import math
import pkgutil
import random
from concurrent import futures

import grpc
import pytest
from google.protobuf import descriptor
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import agent.gen.hostagent.v1
from tests.agent_process import AgentProcess

pytestmark = pytest.mark.integration
SEED = 20240917
CALLS_PER_CHANNEL = 250
UNARY_DEADLINE = 5.0    # a unary answer later than this is a hang
STREAM_DEADLINE = 1.0   # a stream may wait for its first message; DEADLINE_EXCEEDED is fine
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED}
FD = descriptor.FieldDescriptor


def contract_services() -> list:
    files = [health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR]
    for module in pkgutil.iter_modules(agent.gen.hostagent.v1.__path__):
        if module.name.endswith("_pb2"):
            files.append(importlib.import_module(f"agent.gen.hostagent.v1.{module.name}").DESCRIPTOR)
    return [s for f in files for s in f.services_by_name.values()]


# -- hostile values ------------------------------------------------------

INT_RANGES = {FD.TYPE_INT32: (-2 ** 31, 2 ** 31 - 1), FD.TYPE_SINT32: (-2 ** 31, 2 ** 31 - 1),
              FD.TYPE_SFIXED32: (-2 ** 31, 2 ** 31 - 1), FD.TYPE_ENUM: (-2 ** 31, 2 ** 31 - 1),
              FD.TYPE_UINT32: (0, 2 ** 32 - 1), FD.TYPE_FIXED32: (0, 2 ** 32 - 1),
              FD.TYPE_INT64: (-2 ** 63, 2 ** 63 - 1), FD.TYPE_SINT64: (-2 ** 63, 2 ** 63 - 1),
              FD.TYPE_SFIXED64: (-2 ** 63, 2 ** 63 - 1),
              FD.TYPE_UINT64: (0, 2 ** 64 - 1), FD.TYPE_FIXED64: (0, 2 ** 64 - 1)}


def hostile_string(rng: random.Random) -> str:
    return rng.choice([
        lambda: "",
        lambda: "node_load1",
        lambda: "*",
        lambda: "operations/00000000-0000-4000-8000-000000000000",
        lambda: "bmc-" + str(rng.randrange(10)),
        lambda: "(a+)+$",
        lambda: "\u202e\u0000\ufffd" * rng.randrange(1, 50),
        lambda: "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(1, 40))),
        lambda: "x" * rng.choice([101, 4096, 100_000, 200_000]),
        lambda: "y" * 300_000,  # over the receive limit
    ])()


def hostile_int(rng: random.Random, field_type: int) -> int:
    low, high = INT_RANGES[field_type]
    return rng.choice([0, 1, -1 if low < 0 else 2, low, high, rng.randint(low, high),
                       rng.randint(-1000, 1000) if low < 0 else rng.randint(0, 1000)])


def hostile_double(rng: random.Random) -> float:
    return rng.choice([0.0, -0.0, 1.5, -1e308, 1e308, math.inf, -math.inf, math.nan, 5e-324])


def scalar(rng: random.Random, field) -> object:
    if field.type in (FD.TYPE_STRING,):
        return hostile_string(rng)
    if field.type == FD.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 3, 1000, 100_000]))
    if field.type == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        value = hostile_double(rng)
        return value if field.type == FD.TYPE_DOUBLE or not math.isfinite(value) or abs(value) < 3e38 \
            else math.inf
    return hostile_int(rng, field.type)


def fill(rng: random.Random, msg, depth: int = 0) -> None:
    """Set a random subset of ``msg``'s fields to hostile values."""
    if msg.DESCRIPTOR.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
        msg.seconds = hostile_int(rng, FD.TYPE_INT64)
        msg.nanos = hostile_int(rng, FD.TYPE_INT32)
        return
    for field in msg.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        repeated = field.is_repeated
        count = rng.choice([1, 2, 5]) if repeated else 1
        try:
            if field.message_type is not None:
                if field.message_type.GetOptions().map_entry:
                    target = getattr(msg, field.name)
                    key_f, value_f = field.message_type.fields_by_name["key"], \
                        field.message_type.fields_by_name["value"]
                    for _ in range(count):
                        key = scalar(rng, key_f)
                        if value_f.message_type is not None:
                            fill(rng, target[key], depth + 1)
                        else:
                            target[key] = scalar(rng, value_f)
                elif depth < 4:
                    for _ in range(count):
                        sub = getattr(msg, field.name).add() if repeated else getattr(msg, field.name)
                        fill(rng, sub, depth + 1)
            elif repeated:
                getattr(msg, field.name).extend(scalar(rng, field) for _ in range(count))
            else:
                setattr(msg, field.name, scalar(rng, field))
        except (ValueError, TypeError):
            pass  # a value this field's type cannot hold at all: not sendable


def payload(rng: random.Random, method) -> bytes:
    """Undecodable bytes, a mutated encoding, or a valid message of hostile values."""
    msg = message_factory.GetMessageClass(method.input_type)()
    kind = rng.random()
    if kind < 0.2:
        return rng.choice([b"\x0a\x05ab", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                           b"\x08", b"\x0b", b"\x12\xff\xff\xff\xff\x0f"]) + rng.randbytes(rng.randrange(4))
    fill(rng, msg)
    data = msg.SerializeToString()
    if kind < 0.35:
        return rng.randbytes(rng.randrange(1, 64))
    if kind < 0.5 and data:
        raw = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw[:rng.randrange(1, len(raw) + 1)])
    return data


# -- calls ----------------------------------------------------------------

def invoke(channel: grpc.Channel, service, method, data: bytes) -> grpc.StatusCode:
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.client_streaming:
            call = channel.stream_stream(path)(iter([data]), timeout=STREAM_DEADLINE)
        elif method.server_streaming:
            call = channel.unary_stream(path)(data, timeout=STREAM_DEADLINE)
        else:
            channel.unary_unary(path)(data, timeout=UNARY_DEADLINE)
            return grpc.StatusCode.OK
        try:
            next(call, None)
            return grpc.StatusCode.OK
        finally:
            call.cancel()
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return grpc.StatusCode.OK  # waited for a first message that did not come: fine
        return exc.code()


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    p = AgentProcess(tmp_path_factory.mktemp("fuzz"))
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def test_fuzz_every_method_never_internal(proc):
    rng = random.Random(SEED)
    methods = [(s, m) for s in contract_services() for m in s.methods]
    assert len(methods) >= 23, [m.full_name for _, m in methods]
    channels = {"viewer": proc.channel(), "admin": grpc.insecure_channel("unix:" + str(proc.socket))}
    plan = []
    for who in channels:
        plan += [(who, s, m) for s, m in methods]  # every method at least once per channel
        plan += [(who, *rng.choice(methods)) for _ in range(CALLS_PER_CHANNEL - len(methods))]
    rng.shuffle(plan)
    calls = [(who, s, m, payload(rng, m)) for who, s, m in plan]
    try:
        with futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda c: invoke(channels[c[0]], c[1], c[2], c[3]), calls))
        bad = [(who, m.full_name, code.name, data[:40]) for (who, _, m, data), code in zip(calls, codes)
               if code in FORBIDDEN or (code is grpc.StatusCode.DEADLINE_EXCEEDED
                                        and not m.server_streaming)]
        assert not bad, bad[:20]
        seen = collections.Counter(code.name for code in codes)
        assert seen["INVALID_ARGUMENT"] and seen["OK"] and seen["PERMISSION_DENIED"], seen
        assert proc.proc.poll() is None, "the agent died"
        assert not proc.events("rpc.internal_error"), "\n".join(l for l in proc.lines if "internal_error" in l)[-6000:]
        for ch in channels.values():
            check = ch.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=health_pb2.HealthCheckResponse.FromString)
            assert check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
    finally:
        for ch in channels.values():
            ch.close()
