"""Which VM a tap belongs to, from libvirt's live domain XML.

libvirt's QEMU driver keeps each running domain's state in
``/run/libvirt/qemu/<name>.xml`` (``<domstatus>`` around the ``<domain>``);
it holds the domain's UUID and name, each ``<interface><target dev=.../>``,
and, on an OpenStack hypervisor, Nova's ``<metadata><nova:instance>`` with
the instance's display name and owning project.  Neutron names a port's tap
``tap`` + the first 11 characters of the port UUID, so the tap name gives
the port's prefix.  No libvirt daemon or binding is needed: the parser is
pure (:func:`parse_domain`), the reading is :func:`read_vm_ports`.  Absent or
unreadable XML means no VM labels, never an error.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

NOVA_NS = "{http://openstack.org/xmlns/libvirt/nova/"  # any version (1.0, 1.1, 1.2)
_TAP_RE = re.compile(r"tap([0-9a-f]{8}-[0-9a-f]{2})", re.ASCII)
MAX_XML_BYTES = 4 << 20  # a domain's XML is a few tens of KB; more is not libvirt's


@dataclass(frozen=True)
class VmPort:
    """One VM interface: the tap and whom it belongs to."""

    ifname: str
    instance_uuid: str
    instance_name: str   # Nova's display name when present, else the libvirt domain name
    domain_name: str
    project_id: str = ""
    project_name: str = ""
    port_prefix: str = ""  # Neutron port UUID's first 11 characters, from the tap name
    mac: str = ""


def neutron_port_prefix(ifname: str) -> str:
    """``tap1a2b3c4d-5e`` -> ``1a2b3c4d-5e``; "" for a name that is not a Neutron tap."""
    m = _TAP_RE.fullmatch(ifname)
    return m.group(1) if m else ""


def _nova(elem: ET.Element, local: str) -> ET.Element | None:
    for child in elem.iter():
        if isinstance(child.tag, str) and child.tag.startswith(NOVA_NS) and child.tag.endswith("}" + local):
            return child
    return None


def parse_domain(text: str | bytes) -> list[VmPort]:
    """The interfaces of one domain's (live or inactive) XML; [] when it is
    not a domain or has no target devices.  Raises ValueError on XML that
    does not parse."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    domain = root if root.tag == "domain" else root.find("domain")
    if domain is None:
        return []
    uuid = (domain.findtext("uuid") or "").strip().lower()
    name = (domain.findtext("name") or "").strip()
    display, project_id, project_name = name, "", ""
    meta = domain.find("metadata")
    instance = _nova(meta, "instance") if meta is not None else None
    if instance is not None:
        nova_name = _nova(instance, "name")
        if nova_name is not None and (nova_name.text or "").strip():
            display = nova_name.text.strip()
        project = _nova(instance, "project")
        if project is not None:
            project_id = project.get("uuid", "").strip().lower()
            project_name = (project.text or "").strip()
    ports = []
    devices = domain.find("devices")
    for iface in devices.findall("interface") if devices is not None else ():
        target = iface.find("target")
        dev = target.get("dev", "") if target is not None else ""
        if not dev:
            continue
        mac = iface.find("mac")
        ports.append(VmPort(dev, uuid, display, name, project_id, project_name,
                            neutron_port_prefix(dev), mac.get("address", "") if mac is not None else ""))
    return ports


def read_vm_ports(directory: str) -> dict[str, VmPort]:
    """Every VM interface described under ``directory`` (libvirt's live
    state), by tap name.  A missing directory or an unreadable or broken file
    adds nothing."""
    out: dict[str, VmPort] = {}
    if not directory:
        return out
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for fname in names:
        if not fname.endswith(".xml"):
            continue
        try:
            with open(os.path.join(directory, fname), "rb") as f:
                data = f.read(MAX_XML_BYTES + 1)
            if len(data) > MAX_XML_BYTES:
                continue
            for port in parse_domain(data):
                out[port.ifname] = port
        except (OSError, ValueError):
            continue
    return out


def directory_stamp(directory: str) -> tuple[float, int]:
    """What changes when a domain starts or stops (the directory's mtime and
    entry count), so the labels are re-read only then."""
    try:
        st = os.stat(directory)
        return st.st_mtime, st.st_nlink
    except OSError:
        return 0.0, 0
