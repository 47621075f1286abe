# Deploy: Kustomize rendering and the Pulumi program (deploy/). Included from
# the top-level Makefile.

KUSTOMIZE ?= $(CURDIR)/bin/tools/kustomize
# Timeout for the Pulumi program's tests: compiling the Pulumi SDK cold takes
# about 7 minutes on a busy 2-core machine; the tests take seconds.
PULUMI_TEST_TIMEOUT ?= 20m

.PHONY: kustomize-bin render-deploy test-deploy test-pulumi

## kustomize-bin: build (or reuse) bin/tools/kustomize from the Go module proxy; cold about 1 min, cached 0.1 s
kustomize-bin:
	bash hack/deps.d/30-kustomize.sh

## render-deploy: print both example overlays as kubectl would apply them
render-deploy: kustomize-bin
	@for o in inline tap; do echo "# ---- deploy/kustomize/overlays/$$o"; $(KUSTOMIZE) build deploy/kustomize/overlays/$$o; done

## test-deploy: render the overlays and apply them to the real test API server (needs kube-bin)
test-deploy: kustomize-bin kube-bin
	$(GO) test -race -count=1 ./internal/deploytest/

## test-pulumi: test the Pulumi program with the race detector (its own Go module, Pulumi's mocks; no cluster, no Pulumi CLI)
# `go test` runs vet's high-confidence checks itself; a separate `go vet`
# would compile the whole Pulumi SDK a second time without -race (cold:
# about 6 min each on a busy 2-core machine).
test-pulumi:
	cd deploy/pulumi && GOWORK=off $(GO) test -race -timeout $(PULUMI_TEST_TIMEOUT) ./...
