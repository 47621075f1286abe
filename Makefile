# shadowsplit — the two commands a new user needs:
#   make demo   run the router on the embedded default (local model servers, live report)
#   make test   run every test against real components
SHELL := /bin/bash
GO ?= go
BIN := bin
STATIC_OUT ?= $(BIN)/router-static
STATIC_MODELSERVER_OUT ?= $(dir $(STATIC_OUT))modelserver-static
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Long enough for the real-component suites on a loaded 2-core machine; each
# test bounds its own network calls far below this.
TEST_TIMEOUT ?= 30m

.PHONY: all build build-static test test-go vet fmt-check demo bench image clean

all: build

build:
	$(GO) build -o $(BIN)/router ./cmd/router
	$(GO) build -o $(BIN)/modelserver ./cmd/modelserver

# The exact build the Dockerfile runs: static, no cgo, trimmed paths, for
# the router and the example model server the manifests deploy. Fails if a
# result is not a static binary (distroless/static has no libc).
build-static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(STATIC_OUT) ./cmd/router
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(STATIC_MODELSERVER_OUT) ./cmd/modelserver
	@for b in $(STATIC_OUT) $(STATIC_MODELSERVER_OUT); do \
	  if command -v file >/dev/null 2>&1; then \
	    file $$b | grep -q 'statically linked' || { echo "build-static: $$b is not statically linked" >&2; file $$b; exit 1; }; \
	  else \
	    ! ldd $$b >/dev/null 2>&1 || { echo "build-static: $$b is dynamically linked" >&2; exit 1; }; \
	  fi; \
	  echo "build-static: $$b is static"; \
	done

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/kube/')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# make test: builds the real kube-apiserver and etcd once (cached in bin/),
# then vets and runs every test with the race detector. Fuzz seed corpora run
# as ordinary tests.
test: fmt-check vet build-static kube-bin kustomize-bin
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) test-pulumi

# DEMO_FLAGS passes flags through, e.g. make demo DEMO_FLAGS="--threshold 0.95 --duration 2m"
DEMO_FLAGS ?=
demo: build
	$(GO) run ./cmd/demo $(DEMO_FLAGS)

bench:
	$(GO) run ./loadtest/cmd/bench

# For users with a container engine; none runs on the development machines.
image:
	docker build -t shadowsplit/router:$(VERSION) .

clean:
	rm -rf $(BIN)

include hack/kube/kube.mk
include hack/deploy.mk
