#!/usr/bin/env bash
# Installs the system packages hostagent needs on Debian/Ubuntu, only those
# missing, and the Python virtual environment .venv with the package built
# (Cython extension included).
#   scripts/bootstrap.sh run    what running the agent needs
#   scripts/bootstrap.sh test   plus what the test suite drives for real
#   scripts/bootstrap.sh bench  plus what bench/ compares against
set -euo pipefail
cd "$(dirname "$0")/.."
purpose=${1:-run}

packages=(gcc iproute2)
if [ "$purpose" = test ] || [ "$purpose" = bench ]; then
  # prometheus: a real server scrapes the agent in the integration tests;
  # systemd: systemd-analyze verifies the unit file;
  # openipmi, libopenipmi-dev: the ipmi_sim BMC simulator the BMC tests talk
  # to, and the headers of its test extension; ipmitool: the cross-checks.
  packages+=(prometheus systemd openipmi libopenipmi-dev ipmitool)
fi
if [ "$purpose" = bench ]; then
  # What operators run today, for bench/bench_ipmi.py's comparison.
  packages+=(prometheus-ipmi-exporter freeipmi-tools)
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" - <<'PY' 2>/dev/null
import os, sys, sysconfig, venv, ensurepip
assert sys.version_info >= (3, 11)
assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
PY
then
  packages+=(python3 python3-venv python3-dev)
  PYTHON=python3
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing system packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extra=""
[ "$purpose" != run ] && extra="[test]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# Editable: the Cython extension is built into agent/core/ beside its twin.
.venv/bin/python -m pip install -q -e ".${extra}"
.venv/bin/python -c 'import agent.core as c; print(f"bootstrap: kernels={c.IMPLEMENTATION}", file=__import__("sys").stderr)'
