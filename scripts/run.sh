#!/usr/bin/env bash
# Start the whole system locally on the embedded defaults: a Kafka broker on 127.0.0.1:9092,
# then the API and the Faust worker in one process with ClickHouse embedded (chDB, .data/chdb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/bulkops up "$@"
