# shadowsplit — the two commands a new user needs:
#   make demo   run the router on the embedded default (local model servers, live report)
#   make test   run every test against real components
SHELL := /bin/bash
GO ?= go
BIN := bin
STATIC_OUT ?= $(BIN)/router-static
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

# The exact build the Dockerfile runs: static, no cgo, trimmed paths. Fails
# if the result is not a static binary (distroless/static has no libc).
build-static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(STATIC_OUT) ./cmd/router
	@if command -v file >/dev/null 2>&1; then \
	  file $(STATIC_OUT) | grep -q 'statically linked' || { echo "build-static: $(STATIC_OUT) is not statically linked" >&2; file $(STATIC_OUT); exit 1; }; \
	else \
	  ! ldd $(STATIC_OUT) >/dev/null 2>&1 || { echo "build-static: $(STATIC_OUT) is dynamically linked" >&2; exit 1; }; \
	fi
	@echo "build-static: $(STATIC_OUT) is static"

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/kube/')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# make test: builds the real kube-apiserver and etcd once (cached in bin/),
# then vets and runs every test with the race detector. Fuzz seed corpora run
# as ordinary tests.
test: fmt-check vet build-static kube-bin
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

demo:
	$(GO) run ./cmd/demo

bench:
	$(GO) run ./loadtest/cmd/bench

# For users with a container engine; none runs on the development machines.
image:
	docker build -t shadowsplit/router:$(VERSION) .

clean:
	rm -rf $(BIN)

-include hack/kube/kube.mk
