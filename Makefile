# weft: the two commands a new user needs are `make run` and `make test`.
GO       ?= go
BIN      ?= bin/weft
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.branch=$(BRANCH) \
            -X main.buildUser=$(shell whoami 2>/dev/null || echo unknown) -X main.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: build run run-microservices startup-times test test-long lint bench clean tools proto

## build: compile bin/weft
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/weft

## run: monolithic weft on the embedded default config (HTTP 3200, gRPC 9095, OTLP 4317/4318, ./data)
run: build
	./$(BIN)

## run-microservices: every component its own process, over the in-memory dev Kafka broker
## (not for production; see docs/deployment.md); Ctrl-C, or SIGINT/SIGTERM to the script, stops them all
run-microservices: build
	$(GO) build -o bin/weft-dev-kafka ./cmd/weft-dev-kafka
	./scripts/run-microservices.sh

## startup-times: exec-to-ready and SIGTERM-to-exit of `make run`'s process and of each
## microservices process, median of 5 runs (ports of make run and run-microservices must be free)
startup-times: build
	$(GO) build -o bin/weft-dev-kafka ./cmd/weft-dev-kafka
	./scripts/startup-times.sh 5

## test: lint, then every unit and end-to-end test (what CI runs)
test: lint tools
	$(GO) test -count=1 -timeout 15m ./...

## tools: install the MinIO server the S3 tests run against, only when missing
## (WEFT_MINIO_BIN, else $(go env GOBIN) or $(go env GOPATH)/bin); the build takes ~5-8 min on 2 cores;
## and the Prometheus server the metrics-generator tests remote-write to, only when missing
## (WEFT_PROMETHEUS_BIN, else prometheus on PATH): Debian's prometheus package, installed with
## apt-get when root. The package may start its own daemon on :9090; the tests never use it
## (each starts its own server on a free loopback port);
## and the headless Chromium the UI's browser tests drive (query/ui), only when missing
## (WEFT_CHROMIUM_BIN, else chromium on PATH): Debian's chromium package, installed with apt-get when root.
MINIO_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c
tools:
	@if [ -n "$$WEFT_MINIO_BIN" ]; then bin="$$WEFT_MINIO_BIN"; \
	else dir="$$($(GO) env GOBIN)"; [ -n "$$dir" ] || dir="$$($(GO) env GOPATH | cut -d: -f1)/bin"; bin="$$dir/minio"; fi; \
	if [ -x "$$bin" ]; then exit 0; fi; \
	if [ -n "$$WEFT_MINIO_BIN" ]; then echo "WEFT_MINIO_BIN=$$WEFT_MINIO_BIN is not an executable file"; exit 1; fi; \
	echo "installing github.com/minio/minio@$(MINIO_VERSION) into $$bin (about 5-8 minutes on 2 cores)"; \
	$(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@if [ -n "$$WEFT_PROMETHEUS_BIN" ]; then \
		if [ -x "$$WEFT_PROMETHEUS_BIN" ]; then exit 0; fi; \
		echo "WEFT_PROMETHEUS_BIN=$$WEFT_PROMETHEUS_BIN is not an executable file"; exit 1; \
	fi; \
	if command -v prometheus >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "prometheus is missing and installing it needs root: run 'sudo apt-get update && sudo apt-get install -y prometheus' (Debian's package), or set WEFT_PROMETHEUS_BIN"; exit 1; \
	fi; \
	echo "installing Debian's prometheus package (apt-get)"; \
	DEBIAN_FRONTEND=noninteractive apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus && \
	command -v prometheus >/dev/null
	@if [ -n "$$WEFT_CHROMIUM_BIN" ]; then \
		if [ -x "$$WEFT_CHROMIUM_BIN" ]; then exit 0; fi; \
		echo "WEFT_CHROMIUM_BIN=$$WEFT_CHROMIUM_BIN is not an executable file"; exit 1; \
	fi; \
	if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "chromium is missing and installing it needs root: run 'sudo apt-get update && sudo apt-get install -y chromium' (Debian's package), or set WEFT_CHROMIUM_BIN; until then the browser tests of query/ui skip"; exit 0; \
	fi; \
	echo "installing Debian's chromium package (apt-get), for the browser tests of query/ui"; \
	DEBIAN_FRONTEND=noninteractive apt-get update && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium && \
	command -v chromium >/dev/null

## test-long: slow soak, stress and fault tests, then every fuzz target for FUZZTIME each
## (the TraceQL parser, OTLP protobuf via the distributor, OTLP/HTTP with JSON and gzip,
## the pipeline compiler, the config loader, the metrics-generator's span reader)
FUZZTIME ?= 2m
test-long:
	$(GO) test -count=1 -timeout 60m -run 'Long' -v ./...
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./query/traceql
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZTIME) ./stages/distributor
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPTraces$$' -fuzztime $(FUZZTIME) ./sources/otlp
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./pipelines
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./cmd/weft/config
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./sinks/generator/spanview

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench: Go benchmarks of the write path, then the standard end-to-end run
## (weft as a subprocess, 30s of OTLP/gRPC from 4 workers, queries; see docs/bench.md),
## compared with bench/baseline.json (figures worse than their noise threshold say WORSE)
BENCH_FLAGS ?= -duration 30s -workers 4
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench $(BENCH_FLAGS) -baseline bench/baseline.json

clean:
	rm -rf bin

## proto: regenerate query/streaming/tempopb from tempo.proto (needs protoc: apt-get install
## protobuf-compiler; the Go plugins are built at pinned versions into bin/); make test does not need it
PROTOC_GEN_GO_GRPC_VERSION ?= v1.5.1
proto:
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/bin:$$PATH protoc -I query/streaming/tempopb \
		--go_out=query/streaming/tempopb --go_opt=paths=source_relative \
		--go-grpc_out=query/streaming/tempopb --go-grpc_opt=paths=source_relative \
		query/streaming/tempopb/tempo.proto
