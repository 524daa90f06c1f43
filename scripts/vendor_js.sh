#!/usr/bin/env bash
# Refresh the dashboard's vendored JavaScript from the npm registry (run by a maintainer;
# the files are committed, so running Bulkops needs neither npm nor a build step).
set -euo pipefail
cd "$(dirname "$0")/.."
CHARTJS_VERSION=4.6.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@${CHARTJS_VERSION}" > /dev/null && tar xzf "chart.js-${CHARTJS_VERSION}.tgz")
cp "$work/package/dist/chart.umd.min.js" api/static/vendor/chart.umd.min.js
cp "$work/package/LICENSE.md" api/static/vendor/chart.js.LICENSE.md
sha256sum api/static/vendor/chart.umd.min.js
