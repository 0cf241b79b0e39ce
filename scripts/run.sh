#!/usr/bin/env bash
# Runs the agent in the foreground on its embedded defaults: gRPC on
# 127.0.0.1:9447 and a unix socket, Prometheus /metrics on 127.0.0.1:9446.
# Extra arguments go to `hostagent serve` (see `hostagent serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh run
exec .venv/bin/hostagent serve "$@"
