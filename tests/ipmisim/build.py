"""Compile simext.c (the ipmi_sim loadlib module) once per source version.

The .so lands in a per-user cache dir under the system temp dir, named by
the SHA-256 of the source and compiler flags, so concurrent test processes
(pytest-xdist) and repeated sessions reuse it; the build writes a temp file
and renames it, so a reader never sees a half-written library.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("simext.c")
HEADER = Path("/usr/include/OpenIPMI/mcserv.h")
# Undefined symbols (ipmi_emu_*, ipmi_mc_*) resolve against the ipmi_sim
# executable and libIPMIlanserv at dlopen time, so no -l flags are needed.
CFLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Wno-unused-parameter"]


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / f"hostagent-ipmisim-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def module_path() -> Path:
    """Path of the compiled module, building it if this source has no build yet."""
    src = SOURCE.read_bytes()
    digest = hashlib.sha256(src + " ".join(CFLAGS).encode()).hexdigest()[:16]
    out = cache_dir() / f"simext-{digest}.so"
    if out.exists():
        return out
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BuildError("gcc not found (apt-get install gcc)")
    if not HEADER.exists():
        raise BuildError(f"{HEADER} missing (apt-get install libopenipmi-dev)")
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        res = subprocess.run([gcc, *CFLAGS, "-o", tmp, str(SOURCE)],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise BuildError(f"compiling {SOURCE.name} failed:\n{res.stderr}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
