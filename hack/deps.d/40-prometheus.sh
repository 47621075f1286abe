#!/usr/bin/env bash
# Rollout evidence test dependency (issue 4), idempotent: Debian's
# prometheus server. The Go test helper (internal/evidence) starts its own
# instance on 127.0.0.1 with a generated config and a temporary TSDB, and
# stops it; nothing is started here. Installing does start a system
# service on Debian-based images only when systemd runs, which it does not
# in CI containers.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  echo "40-prometheus: $(prometheus --version 2>&1 | head -1)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends prometheus; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus
fi
echo "40-prometheus: $(prometheus --version 2>&1 | head -1)"
