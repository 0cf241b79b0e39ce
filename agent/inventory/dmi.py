"""SMBIOS/DMI identity: ``/sys/class/dmi/id/*``.

Absent on many VMs and ARM boards (``present`` false, strings empty).  The
serial numbers and UUID are readable by root only; an unreadable attribute is
reported as ``""``.  Values are reported as the firmware gives them, including
placeholders such as ``To Be Filled By O.E.M.``.
"""
from __future__ import annotations

from agent.backends.hostfs import HostFS
from agent.inventory.model import DmiInfo

DMI_DIR = "sys/class/dmi/id"

# DmiInfo field -> attribute file under DMI_DIR (same names today; kept as a
# table so a renamed field does not silently read nothing).
FIELDS = {
    "sys_vendor": "sys_vendor",
    "product_name": "product_name",
    "product_serial": "product_serial",
    "product_uuid": "product_uuid",
    "board_vendor": "board_vendor",
    "board_name": "board_name",
    "board_serial": "board_serial",
    "bios_vendor": "bios_vendor",
    "bios_version": "bios_version",
    "bios_date": "bios_date",
    "chassis_asset_tag": "chassis_asset_tag",
}


def collect_dmi(hostfs: HostFS) -> DmiInfo:
    if not hostfs.exists(DMI_DIR):
        return DmiInfo()
    values = {name: hostfs.read_value(f"{DMI_DIR}/{attr}", "") or ""
              for name, attr in FIELDS.items()}
    return DmiInfo(present=True, **values)
