#!/usr/bin/env bash
# Diff store and report test dependencies (issue 5), idempotent:
#   - Debian chromium (headless test of the /reports page) and a font so the
#     screenshot shows text;
#   - @duckdb/node-api in .cache/duckdb (the Parquet export is read back by a
#     reader nobody here wrote), pinned by hack/duckdb/package-lock.json.
# PostgreSQL is installed on the machines but not started; the Go test helper
# (internal/diffstore/pgtest) starts and stops it itself. Nothing is started here.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # One update per run at most, only when something is missing.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi

dest=.cache/duckdb
if [ ! -d "$dest/node_modules/@duckdb/node-api" ] || ! cmp -s hack/duckdb/package-lock.json "$dest/package-lock.json"; then
  mkdir -p "$dest"
  cp hack/duckdb/package.json hack/duckdb/package-lock.json "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "50-report: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), duckdb node-api in $dest"
