#!/usr/bin/env bash
# kustomize for internal/deploytest (which renders deploy/kustomize/overlays)
# and for users without kubectl. Built from the Go module proxy into
# bin/tools/kustomize: no binary download, no apt package (kubectl is not in
# Debian's archive). Idempotent: a binary reporting the pinned version is
# kept (about 0.1 s). Cold: about 1 min on 2 cores (3 min on a busy machine).
#
# The version is also internal/deploytest.KustomizeVersion; change both.
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$repo/bin/tools"
bin="$out/kustomize"

if [[ -x "$bin" ]] && [[ "$("$bin" version 2>/dev/null || true)" == "$KUSTOMIZE_VERSION" ]]; then
  echo "kustomize $KUSTOMIZE_VERSION: up to date ($bin)"
  exit 0
fi

echo "kustomize $KUSTOMIZE_VERSION: building from the Go module proxy..."
mkdir -p "$out"
# Outside the repository's module and workspace: `go install pkg@version`
# resolves the tool's own go.mod (sigs.k8s.io/kustomize/kustomize/v5 has no
# replace directives, so no wrapper module is needed).
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod GOBIN="$tmp" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
mv -f "$tmp/kustomize" "$bin"
got="$("$bin" version)"
if [[ "$got" != "$KUSTOMIZE_VERSION" ]]; then
  echo "kustomize: built $bin but it reports $got, want $KUSTOMIZE_VERSION" >&2
  exit 1
fi
echo "kustomize $KUSTOMIZE_VERSION: built ($bin)"
