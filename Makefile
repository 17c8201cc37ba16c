# extlb — build, test, run.
#
#   make build         bin/extlb (the shipped binary) and bin/extlb-demo
#   make test          everything CI runs: vet, gofmt, unit, e2e on a real
#                      control plane, provider tests over the wire, and the
#                      network-namespace tests (as root)
#   make bench         benchmarks (not part of make test)
#   make run           the demo: a local control plane, three simulated
#                      nodes, the controller and the fake cloud
#   make controlplane  build (and cache) kube-apiserver and etcd
#   make nodes         the same, plus the node programs (kubelet, kube-proxy,
#                      controller-manager, scheduler in one kube-node
#                      executable); make test needs them, make run does not
#   make image         container image (needs a Docker engine)

GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
TEST_FLAGS ?= -count=1 -timeout 60m
OUT        := .test-output
IMAGE      ?= extlb:$(VERSION)

# Debian packages the tests use: iproute2 for network namespaces (speaker
# tests); haproxy is the reference the fake-cloud benchmark compares with.
TEST_PACKAGES  := iproute2
BENCH_PACKAGES := iproute2 haproxy

.PHONY: all build test unit vet fmt-check deps bench-deps controlplane nodes bench run image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/extlb ./cmd/extlb
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/extlb-demo ./cmd/extlb-demo

deps:
	@bash .ci/apt-install.sh $(TEST_PACKAGES)
	$(GO) mod download

bench-deps:
	@bash .ci/apt-install.sh $(BENCH_PACKAGES)

controlplane:
	$(GO) run ./fake/cluster/cmd/build-controlplane

nodes:
	$(GO) run ./fake/cluster/cmd/build-controlplane -nodes

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite, verbose into $(OUT)/test.log; the summary (and the check
# that tests needing root or the control plane really ran) is printed at
# the end.
test: deps controlplane nodes vet fmt-check
	@mkdir -p $(OUT)
	@EXTLB_REQUIRE_CONTROLPLANE=1 $(GO) test $(TEST_FLAGS) -v ./... 2>&1 | tee $(OUT)/test.log | grep -E '^(ok|FAIL|panic:)|^\s*--- FAIL' || true; \
	  bash .ci/summarize.sh $(OUT)/test.log; rc=$$?; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi
	$(GO) test -count=1 -race -timeout 20m ./controller/... ./fake/memory/...

unit:
	$(GO) test -count=1 -short ./...

bench: bench-deps controlplane
	@mkdir -p $(OUT)
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 60m ./... 2>&1 | tee $(OUT)/bench.log

run: build controlplane
	./bin/extlb-demo

image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

clean:
	rm -rf bin $(OUT)
