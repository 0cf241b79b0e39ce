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
  # to, and the headers of its test extension; ipmitool: the cross-checks;
  # prometheus-node-exporter: the real node_exporter the agent is compared
  # with side by side, and bench/bench_node.py's baseline (the tests start
  # their own on a free loopback port; on a host with systemd the package
  # also starts its service on :9100).
  packages+=(prometheus systemd openipmi libopenipmi-dev ipmitool prometheus-node-exporter)
  # The real-kernel lane (scripts/realkernel.sh, docs/testing.md) boots
  # Debian's stock kernel under QEMU for what this kernel lacks (bond, VLAN,
  # dummy): linux-image-amd64, the kernel and its modules (never booted on
  # this machine: no initramfs is made, see INITRD below); qemu-system-x86;
  # busybox-static, for virtme-ng's initramfs; udev, whose udevd the guest's
  # init looks for (the lane stands in for it).
  packages+=(linux-image-amd64 qemu-system-x86 busybox-static udev)
  # pmacct: its sfacctd is the real sFlow collector the agent's datagrams must
  # satisfy; tcpdump: decodes every datagram (tests/test_flows_sflow.py).
  packages+=(pmacct tcpdump)
fi
if [ "$purpose" = bench ]; then
  # What operators run today, for bench/bench_ipmi.py's comparison.
  packages+=(prometheus-ipmi-exporter freeipmi-tools)
  # softflowd: a libpcap flow exporter sampling the same interface at the
  # same rate, bench/sampling_e2e.py's baseline beside pmacctd (pmacct).
  packages+=(softflowd)
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
  # A kernel package would build an initramfs for a boot that never happens
  # (the lane hands QEMU the kernel and virtme-ng's own initramfs): its
  # hook skips that when INITRD=No.
  export INITRD=No
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extra=""
[ "$purpose" != run ] && extra="[test]"
# Skip the install when nothing it depends on changed since the last one: the
# stamp is a hash of the project's metadata and the extension sources, and
# the purpose it was made for (a test install serves a run too); the built
# extensions must still be there.  This is what makes a second
# `scripts/run.sh` start in about a second instead of twenty.
level() { case "$1" in run) echo 1 ;; test) echo 2 ;; *) echo 3 ;; esac; }
stamp_file=.venv/.hostagent-bootstrap
stamp=$(cat pyproject.toml setup.py ext/*.pyx ext/*.pxi | sha256sum | cut -d' ' -f1)
read -r old_stamp old_level 2>/dev/null < "$stamp_file" || true
built() { compgen -G 'agent/core/_kernels.*.so' >/dev/null && compgen -G 'agent/core/_netlink.*.so' >/dev/null \
  && compgen -G 'agent/core/_expo.*.so' >/dev/null && compgen -G 'agent/core/_flows.*.so' >/dev/null; }
if [ "${old_stamp:-}" = "$stamp" ] && [ "${old_level:-0}" -ge "$(level "$purpose")" ] && built; then
  exit 0
fi
# A venv made by an old Python's ensurepip may have a pip too old for the
# build; upgrade only then, not on every run.
.venv/bin/python - <<'PY' || .venv/bin/python -m pip install -q --upgrade pip >/dev/null
import sys
from importlib.metadata import version
sys.exit(int(version("pip").split(".")[0]) < 23)
PY
# Editable: the Cython extension is built into agent/core/ beside its twin.
# The build's chatter (setuptools' notes on editable installs) is shown only
# when the install fails.
log=$(mktemp)
if ! .venv/bin/python -m pip install -q -e ".${extra}" >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
.venv/bin/python -c 'import agent.core as c; print(f"bootstrap: kernels={c.IMPLEMENTATION}", file=__import__("sys").stderr)'
echo "$stamp $(level "$purpose")" > "$stamp_file"
