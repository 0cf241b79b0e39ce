#!/usr/bin/env bash
# Runs the whole test suite: first with the Cython kernels (required to be
# built), then the kernel-dependent tests again with the pure-Python twin
# forced, as msgpack does.  Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
export PYTHONUNBUFFERED=1
# The BMC tests need ipmi_sim (installed above): fail rather than skip.
export HOSTAGENT_REQUIRE_IPMISIM=1
# So do the network-namespace tests (root and iproute2): a runner that cannot
# make namespaces must not pass by skipping them.  A kernel without a link
# kind (bond, vlan, dummy) still skips just that test.
export HOSTAGENT_REQUIRE_NETNS=1
# The side-by-side and dashboard tests need node_exporter (installed above).
export HOSTAGENT_REQUIRE_NODE_EXPORTER=1
# Imports go one way (.importlinter, docs/architecture.md "Layers"): a wrong
# import fails here, before any test runs.
.venv/bin/lint-imports --no-cache
HOSTAGENT_REQUIRE_EXTENSIONS=1 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
HOSTAGENT_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_store.py tests/test_api.py tests/test_scheduler.py tests/test_daemon.py "$@"
# Last, the tests marked realkernel (deselected above), inside Debian's stock
# kernel under QEMU: this kernel lacks bond, VLAN and dummy (docs/testing.md).
# A lane that cannot boot fails the suite with the reason rather than skip.
export HOSTAGENT_REQUIRE_REALKERNEL=1
rc=0
scripts/realkernel.sh .venv/bin/python -m pytest -q -p no:cacheprovider -m realkernel tests/ "$@" || rc=$?
# pytest's 5 (no test selected) can only come from extra arguments (-k ...).
if [ "$rc" -ne 0 ] && { [ "$rc" -ne 5 ] || [ $# -eq 0 ]; }; then exit "$rc"; fi
