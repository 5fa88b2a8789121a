# weft: the two commands a new user needs are `make run` and `make test`.
GO       ?= go
BIN      ?= bin/weft
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.branch=$(BRANCH) \
            -X main.buildUser=$(shell whoami 2>/dev/null || echo unknown) -X main.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: build run test test-long lint bench clean

## build: compile bin/weft
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/weft

## run: monolithic weft on the embedded default config (HTTP 3200, gRPC 9095, OTLP 4317/4318, ./data)
run: build
	./$(BIN)

## test: lint, then every unit and end-to-end test (what CI runs)
test: lint
	$(GO) test -count=1 -timeout 15m ./...

## test-long: slow soak, stress and fuzz runs
test-long:
	$(GO) test -count=1 -timeout 60m -run 'Long' ./...

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench: Go benchmarks of the write path
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
