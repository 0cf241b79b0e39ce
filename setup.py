"""Builds the Cython kernels and the netlink parser in ext/ into the agent package.

Everything else about the package is in pyproject.toml.  Set
HOSTAGENT_NO_EXTENSIONS=1 at build time to skip the extensions (the agent then
runs their pure-Python twins and says so at start).
"""
import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("HOSTAGENT_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize

    # -ffp-contract=off: no fused multiply-add, so the kernels round exactly
    # like their pure-Python twin (the parity tests compare bit for bit).
    flags = ["-O2", "-ffp-contract=off"]
    ext_modules = cythonize(
        [Extension("agent.core._kernels", ["ext/_kernels.pyx"], extra_compile_args=flags),
         Extension("agent.core._netlink", ["ext/_netlink.pyx"], extra_compile_args=flags),
         # packet header decoder and flow table (docs/flows-kernel.md)
         Extension("agent.core._flows", ["ext/_flows.pyx"], extra_compile_args=flags),
         # /metrics text (its gzip is zlib's stream, agent/exposition_render.py)
         Extension("agent.core._expo", ["ext/_expo.pyx"], extra_compile_args=flags)],
        compiler_directives={"language_level": "3"},
    )

setup(ext_modules=ext_modules)
