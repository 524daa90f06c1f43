#!/usr/bin/env bash
# Install everything Bulkops needs into .venv and .cache, from the package registries only.
# Idempotent: a second run only checks. Needs Python 3.11+, Java 17+ and Maven on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Bulkops needs Python 3.11+, found {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.bulkops-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python packages (pinned in pyproject.toml)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[chdb,dev]"
  echo "$want" > "$stamp"
fi

echo "==> Kafka broker jars"
.venv/bin/python -m bulkops.cli kafka fetch > /dev/null
