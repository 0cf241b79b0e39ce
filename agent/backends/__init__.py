"""Backends: the only modules that touch the host (procfs, sysfs, later netlink,
IPMI, NVML).  Everything above them takes a backend as a constructor argument
so tests can swap in fixture trees or fakes."""
