"""Builds the fake NVML library with gcc against the real ``nvml.h``.

The header comes from NVIDIA's PyPI package ``nvidia-nvml-dev-cu12`` (the
``test`` extra), found through the installed distribution, so the fake is
checked by the compiler against the same declarations the real driver
implements: a wrong signature fails the build, not a test.

Builds are cached in a directory keyed by the hash of the sources, the
header and the flags; a build goes to a temporary name and is renamed into
place, so concurrent test processes never load a half-written library.

``omit``: functions left out of the library (each source guards them with
``#ifndef OMIT_<name>``), so pynvml finds the symbol missing exactly as it
does with an old driver.  :data:`OLD_DRIVER` is such a set.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

HERE = Path(__file__).resolve().parent
SOURCES = ("fake_state.c", "fake_core.c", "fake_device.c", "fake_counters.c", "fake_mig.c",
           "fake_events.c")
HEADERS = ("fakenvml.h",)
DISTRIBUTION = "nvidia-nvml-dev-cu12"
CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
          "-Wl,-soname,libnvidia-ml.so.1")

# What a driver from before R510/R535 lacks: the versioned memory query,
# the renamed clock-event query and the batched field values.  The agent
# falls back for each; remapped rows have no fallback and are then absent.
OLD_DRIVER = ("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetCurrentClocksEventReasons",
              "nvmlDeviceGetFieldValues", "nvmlDeviceGetRemappedRows")


class BuildError(RuntimeError):
    pass


def nvml_include_dir() -> Path:
    """The directory holding NVIDIA's ``nvml.h``, from the installed package."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(f"{DISTRIBUTION} is not installed (pip install -e '.[test]')") from None
    for f in dist.files or ():
        if f.name == "nvml.h":
            return Path(dist.locate_file(f)).parent
    raise BuildError(f"{DISTRIBUTION} holds no nvml.h")


def omittable() -> frozenset[str]:
    """The functions a build can leave out."""
    names: set[str] = set()
    for name in SOURCES:
        names.update(re.findall(r"#ifndef OMIT_(\w+)", (HERE / name).read_text()))
    return frozenset(names)


def cache_dir() -> Path:
    explicit = os.environ.get("HOSTAGENT_FAKENVML_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hostagent" / "fakenvml"


def build(omit: Iterable[str] = (), cache: Path | None = None) -> Path:
    """The path of a built ``libnvidia-ml.so.1`` (built now if not cached)."""
    omit = tuple(sorted(set(omit)))
    unknown = set(omit) - omittable()
    if unknown:
        raise BuildError(f"cannot omit {sorted(unknown)}: not guarded by OMIT_ in the sources")
    include = nvml_include_dir()
    flags = (*CFLAGS, *(f"-DOMIT_{name}" for name in omit))
    digest = hashlib.sha256()
    for name in (*HEADERS, *SOURCES):
        digest.update((HERE / name).read_bytes())
    digest.update((include / "nvml.h").read_bytes())
    digest.update("\0".join(flags).encode())
    target_dir = (cache or cache_dir()) / digest.hexdigest()[:20]
    target = target_dir / "libnvidia-ml.so.1"
    if target.exists():
        return target
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable cache: a private temporary one
        return build(omit, Path(tempfile.mkdtemp(prefix="fakenvml-")))
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".build-", suffix=".so")
    os.close(fd)
    cmd = ["gcc", *flags, f"-I{HERE}", f"-I{include}", "-o", tmp, *(str(HERE / s) for s in SOURCES)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        raise BuildError(f"gcc failed ({done.returncode}):\n{done.stderr}")
    os.replace(tmp, target)
    return target


if __name__ == "__main__":
    print(build())
