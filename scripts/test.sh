#!/usr/bin/env bash
# Run the whole test suite: installs what is missing, and the tests start and stop their own
# Kafka broker (set BULKOPS_TEST_KAFKA_BOOTSTRAP to use a running one instead). The
# dashboard's browser tests need Debian's Chromium; as root it is installed here, otherwise
# they skip (under CI=true they fail). Their screenshots go to artifacts/screenshots/.
# Tests run in BULKOPS_TEST_WORKERS processes (pytest-xdist; default 2, 0 for one process),
# each with its own broker: most integration tests wait on a worker far more than they
# compute, and two at a time took the suite from ~28 to ~21 minutes on the 2-core CI machine.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "==> Chromium for the dashboard's browser tests (Debian: chromium, chromium-driver)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver > /dev/null 2>&1 \
      || { apt-get update -q > /dev/null && apt-get install -y -q chromium chromium-driver > /dev/null; } \
      || echo "could not install Chromium: the browser tests will fail under CI=true" >&2
  else
    echo "==> no chromium/chromedriver: the browser tests skip (apt-get install chromium chromium-driver)"
  fi
fi
.venv/bin/python -m pytest -p no:cacheprovider -n "${BULKOPS_TEST_WORKERS:-2}" --dist worksteal "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
