#!/usr/bin/env bash
# Run the whole test suite: installs what is missing, and the tests start and stop their own
# Kafka broker (set BULKOPS_TEST_KAFKA_BOOTSTRAP to use a running one instead).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
