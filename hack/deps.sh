#!/usr/bin/env bash
# Installs and prepares what the tests need beyond Go, on a fresh machine.
# Each feature owns one script in hack/deps.d/ (run in name order); each must
# be idempotent and quick when its component is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
for s in hack/deps.d/*.sh; do
  [ -e "$s" ] || continue
  echo "== deps: $s"
  bash "$s"
done
