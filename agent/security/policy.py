"""Who may call what: identities map to roles, methods declare the role they
need in the contract (``hostagent.v1.required_role``), and this module reads
both.  Nothing here is hand-listed per method: a new RPC without the option
is denied until its author decides."""
from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping

from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2

from agent.config_values import Invalid, identities as check_identities, unqualified_identities
from agent.gen.hostagent.v1 import options_pb2


class Role(enum.IntEnum):
    """Values match ``hostagent.v1.Role``; each includes the ones below."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> "Role":
        return cls[name.upper()]


@dataclass(frozen=True)
class MethodRule:
    required: Role
    mutating: bool


# Standard services beside ours: reading health or the schema is a viewer's
# right.  Health's methods come from its descriptor, so one that grpc adds
# (List came after Check and Watch) is a viewer's too, not denied to all.
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
STANDARD_RULES = {
    **{f"/{_HEALTH.full_name}/{m.name}": MethodRule(Role.VIEWER, False) for m in _HEALTH.methods},
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": MethodRule(Role.VIEWER, False),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": MethodRule(Role.VIEWER, False),
}


def method_rules(files: Iterable[FileDescriptor]) -> dict[str, MethodRule]:
    """``/package.Service/Method`` -> rule, for every method of every service
    in ``files``; methods without ``required_role`` get ``Role.NONE`` (denied)."""
    rules = dict(STANDARD_RULES)
    for fd in files:
        for service in fd.services_by_name.values():
            for method in service.methods:
                opts = method.GetOptions()
                rules[f"/{service.full_name}/{method.name}"] = MethodRule(
                    Role(opts.Extensions[options_pb2.required_role]),
                    bool(opts.Extensions[options_pb2.mutating]))
    return rules


class RolesFileError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def load_roles_file(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """The ``[identities]`` table of a roles file, its keys qualified, and
    the keys that were not (-> how they are read); any other key is an error."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RolesFileError(path, f"cannot read: {exc}") from None
    unknown = sorted(set(doc) - {"identities"})
    if unknown:
        raise RolesFileError(path, f"{unknown[0]}: unknown key (valid: identities)")
    table = doc.get("identities", {})
    try:
        return check_identities(table), unqualified_identities(table)
    except Invalid as exc:
        raise RolesFileError(path, f"identities: {exc}") from None


class Policy:
    """An immutable snapshot; the daemon swaps in a new one on reload."""

    def __init__(self, rules: Mapping[str, MethodRule], identities: Mapping[str, str]) -> None:
        self.rules = MappingProxyType(dict(rules))
        self.identities = MappingProxyType(
            {k: Role.parse(v) for k, v in identities.items() if v != "none"})

    def role_of(self, identity: str) -> Role:
        return self.identities.get(identity, Role.NONE)

    def rule(self, method: str) -> MethodRule | None:
        return self.rules.get(method)
