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
HOSTAGENT_REQUIRE_EXTENSIONS=1 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
HOSTAGENT_NO_EXTENSIONS=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_store.py tests/test_api.py tests/test_scheduler.py tests/test_daemon.py "$@"
