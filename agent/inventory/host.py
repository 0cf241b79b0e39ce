"""Host and OS: names, kernel, os-release, boot time, and what the node runs as.

Files come through :class:`HostFS`; what is not a file (host name, uname,
boot time) comes from a :class:`SystemInfo` provider, :func:`local_system` by
default, which tests replace.

Role evidence, strongest first:

* ``proc/xen/capabilities`` containing ``control_d``: Xen dom0, a HYPERVISOR
  (dom0 also has ``sys/hypervisor/type``, which otherwise means a guest);
* a GUEST when the cpuinfo flags hold ``hypervisor``, DMI names a virtual
  machine (:data:`DMI_VMS`), a paravirtual clocksource is registered
  (``kvm-clock``, ``xen``, ``hyperv_clocksource*``), or ``sys/hypervisor/type``
  exists;
* else a HYPERVISOR when ``dev/kvm`` exists, else BARE_METAL.
"""
from __future__ import annotations

import os
import shlex
import socket
from typing import Callable, NamedTuple

import psutil

from agent.backends.hostfs import HostFS
from agent.inventory.cpu import summarize_cpuinfo
from agent.inventory.model import HostInfo, HostRole

CLOCKSOURCES = "sys/devices/system/clocksource/clocksource0/available_clocksource"

# (sys_vendor contains, product_name contains, name); lower case, "" = any.
# First match wins.  Amazon's bare-metal instances (product "*.metal") are
# excluded in :func:`dmi_virtualization`.
DMI_VMS = (
    ("amazon ec2", "", "amazon"),
    ("", "google compute engine", "google"),
    ("vmware", "", "vmware"),
    ("microsoft corporation", "virtual machine", "microsoft"),
    ("xen", "", "xen"),
    ("innotek", "", "oracle"),
    ("", "virtualbox", "oracle"),
    ("parallels", "", "parallels"),
    ("", "bhyve", "bhyve"),
    ("", "kvm", "kvm"),
    ("qemu", "", "qemu"),
    ("bochs", "", "bochs"),
)
# Names that only say "some QEMU"; a paravirtual clocksource tells better.
_GENERIC = {"qemu", "bochs"}
_CLOCKSOURCES = (("kvm-clock", "kvm"), ("xen", "xen"), ("hyperv_clocksource", "microsoft"))


class SystemInfo(NamedTuple):
    hostname: str = ""
    kernel_release: str = ""
    kernel_version: str = ""
    architecture: str = ""
    boot_time: float = 0.0


SystemProvider = Callable[[], SystemInfo]


def local_system() -> SystemInfo:
    """The running kernel's view (the default :data:`SystemProvider`)."""
    uname = os.uname()
    return SystemInfo(hostname=socket.gethostname(), kernel_release=uname.release,
                      kernel_version=uname.version, architecture=uname.machine,
                      boot_time=psutil.boot_time())


class VirtEvidence(NamedTuple):
    """What the role is decided from; every field read through HostFS."""

    cpu_flags: frozenset[str] = frozenset()
    sys_vendor: str = ""
    product_name: str = ""
    hypervisor_type: str | None = None  # sys/hypervisor/type; None when absent
    xen_control_domain: bool = False
    clocksources: tuple[str, ...] = ()
    kvm_device: bool = False


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines of os-release(5), shell quoting removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            out[key] = " ".join(shlex.split(value))
        except ValueError:
            out[key] = value.strip("\"'")
    return out


def dmi_virtualization(sys_vendor: str, product_name: str) -> str:
    vendor, product = sys_vendor.lower(), product_name.lower()
    if vendor.startswith("amazon") and product.endswith(".metal"):
        return ""
    for want_vendor, want_product, name in DMI_VMS:
        if (want_vendor or want_product) and want_vendor in vendor and want_product in product:
            return name
    return ""


def clock_virtualization(clocksources: tuple[str, ...]) -> str:
    for prefix, name in _CLOCKSOURCES:
        if any(c.startswith(prefix) for c in clocksources):
            return name
    return ""


def detect_role(ev: VirtEvidence) -> tuple[HostRole, str]:
    """(role, virtualization) from the evidence; see the module docstring."""
    if ev.xen_control_domain:
        return HostRole.HYPERVISOR, ""
    by_dmi = dmi_virtualization(ev.sys_vendor, ev.product_name)
    by_clock = clock_virtualization(ev.clocksources)
    if not ("hypervisor" in ev.cpu_flags or by_dmi or by_clock
            or ev.hypervisor_type is not None):
        return (HostRole.HYPERVISOR if ev.kvm_device else HostRole.BARE_METAL), ""
    if by_dmi and not (by_dmi in _GENERIC and by_clock):
        return HostRole.GUEST, by_dmi
    return HostRole.GUEST, by_clock or (ev.hypervisor_type or "").lower()


def gather_evidence(hostfs: HostFS) -> VirtEvidence:
    try:
        flags = frozenset(summarize_cpuinfo(hostfs.read_text("proc/cpuinfo")).flags)
    except OSError:
        flags = frozenset()
    return VirtEvidence(
        cpu_flags=flags,
        sys_vendor=hostfs.read_value("sys/class/dmi/id/sys_vendor", "") or "",
        product_name=hostfs.read_value("sys/class/dmi/id/product_name", "") or "",
        hypervisor_type=hostfs.read_value("sys/hypervisor/type"),
        xen_control_domain="control_d" in (hostfs.read_value("proc/xen/capabilities", "") or ""),
        clocksources=tuple((hostfs.read_value(CLOCKSOURCES, "") or "").split()),
        kvm_device=hostfs.exists("dev/kvm"),
    )


def _os_release(hostfs: HostFS) -> dict[str, str]:
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            return parse_os_release(hostfs.read_text(rel))
        except OSError:
            continue
    return {}


def collect_host(hostfs: HostFS, system: SystemProvider | None = None) -> HostInfo:
    sysinfo = (system or local_system)()
    os_release = _os_release(hostfs)
    role, virtualization = detect_role(gather_evidence(hostfs))
    return HostInfo(
        hostname=sysinfo.hostname,
        machine_id=hostfs.read_value("etc/machine-id", "") or "",
        kernel_release=sysinfo.kernel_release,
        kernel_version=sysinfo.kernel_version,
        architecture=sysinfo.architecture,
        os_name=os_release.get("PRETTY_NAME", ""),
        os_id=os_release.get("ID", ""),
        os_version=os_release.get("VERSION_ID", ""),
        boot_time=sysinfo.boot_time,
        role=role,
        virtualization=virtualization,
    )
