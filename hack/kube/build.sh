#!/usr/bin/env bash
# Builds the test environment's etcd and kube-apiserver from Go module sources
# (no binary downloads, no container engine) into bin/kube/ (git-ignored).
#
# Each binary is rebuilt only when it is missing or does not report the pinned
# version, so a second run costs about a second. The versions live here and in
# the wrapper modules hack/kube/etcd/go.mod and hack/kube/apiserver/go.mod;
# change both together.
#
# Usage: hack/kube/build.sh [OUT_DIR]     (default: <repo>/bin/kube)
# Env:   KUBE_BUILD_FORCE=1  rebuild even when the versions match.
set -euo pipefail

ETCD_VERSION=3.6.16
KUBE_VERSION=v1.35.4

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/bin/kube}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The wrappers are separate modules: never let a workspace or a GOFLAGS=-mod
# setting from the caller pull the router's module into their builds.
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
# Building in the module cache needs no network once both modules are downloaded.

# EPOCHREALTIME (bash 5) gives sub-second timings for the cached case.
now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# up_to_date BIN WANT: true when BIN may be reused.
up_to_date() {
  [[ "${KUBE_BUILD_FORCE:-0}" != 1 ]] && version_ok "$@"
}

# version_ok BIN WANT: true when BIN exists and its --version output contains WANT.
version_ok() {
  [[ -x "$1" ]] || return 1
  local got
  got="$("$1" --version 2>/dev/null || true)"
  [[ "$got" == *"$2"* ]]
}

# Build to a private temporary name and rename into place: a test that is
# running the old binary keeps its inode, and two concurrent runs of this
# script never write the same file.
tmp_suffix=".tmp.$$"
trap 'rm -f "$out/etcd$tmp_suffix" "$out/kube-apiserver$tmp_suffix"' EXIT

total_start=$(now)

start=$(now)
if up_to_date "$out/etcd" "etcd Version: $ETCD_VERSION"; then
  echo "etcd $ETCD_VERSION: up to date ($out/etcd, $(elapsed "$start"))"
else
  echo "etcd $ETCD_VERSION: building (cold: about 1 min)..."
  (cd "$here/etcd" && go build -trimpath -o "$out/etcd$tmp_suffix" go.etcd.io/etcd/server/v3)
  mv -f "$out/etcd$tmp_suffix" "$out/etcd"
  version_ok "$out/etcd" "etcd Version: $ETCD_VERSION" || {
    echo "etcd: built binary does not report version $ETCD_VERSION:" >&2
    "$out/etcd" --version >&2 || true
    exit 1
  }
  echo "etcd $ETCD_VERSION: built in $(elapsed "$start")"
fi

start=$(now)
if up_to_date "$out/kube-apiserver" "Kubernetes $KUBE_VERSION"; then
  echo "kube-apiserver $KUBE_VERSION: up to date ($out/kube-apiserver, $(elapsed "$start"))"
else
  # Without the -X flags the server reports v0.0.0-master and clients warn about skew.
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
  echo "kube-apiserver $KUBE_VERSION: building (cold: about 5 min and 2.2 GB of memory)..."
  (cd "$here/apiserver" && go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver$tmp_suffix" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "$out/kube-apiserver$tmp_suffix" "$out/kube-apiserver"
  version_ok "$out/kube-apiserver" "Kubernetes $KUBE_VERSION" || {
    echo "kube-apiserver: built binary does not report version $KUBE_VERSION:" >&2
    "$out/kube-apiserver" --version >&2 || true
    exit 1
  }
  echo "kube-apiserver $KUBE_VERSION: built in $(elapsed "$start")"
fi

echo "kube binaries ready in $out ($(elapsed "$total_start") total)"
