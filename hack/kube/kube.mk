# Test Kubernetes API server (etcd + kube-apiserver built from Go module
# sources; see hack/kube/build.sh and internal/kubetest). Included from the
# top-level Makefile.

KUBE_BIN_DIR ?= $(CURDIR)/bin/kube
KUBE_UP_FLAGS ?=

.PHONY: kube-bin kube-up

## kube-bin: build (or reuse) bin/kube/etcd and bin/kube/kube-apiserver; cold about 6 min, cached about 1 s
kube-bin:
	hack/kube/build.sh "$(KUBE_BIN_DIR)"

## kube-up: run etcd + kube-apiserver with Istio's CRDs until Ctrl-C and print a kubeconfig (KUBE_UP_FLAGS=-kubeconfig=PATH)
# Built, then exec'd (not `go run`) so Ctrl-C reaches kube-up itself, which
# stops the API server before etcd.
kube-up: kube-bin
	go build -o bin/kube-up ./cmd/kube-up
	SHADOWSPLIT_KUBE_ASSETS="$(KUBE_BIN_DIR)" exec bin/kube-up $(KUBE_UP_FLAGS)
