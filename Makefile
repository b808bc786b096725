GO        ?= go
BINARY    ?= kms_exporter
PKG       := github.com/prometheus/common/version
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) -X $(PKG).Branch=$(BRANCH) -X $(PKG).BuildUser=make -X $(PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

.PHONY: all build test lint run-demo bench e2e docker clean

all: lint test build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BINARY) .

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run-demo: build
	./$(BINARY) --demo

bench:
	./bench/run.sh

e2e: build
	$(GO) test -tags e2e -count=1 -v -timeout 10m ./e2e/...

docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg BRANCH=$(BRANCH) \
		--build-arg BUILD_DATE=$$(date -u +%Y%m%d-%H:%M:%S) -t kms_exporter:$(VERSION) .

clean:
	rm -f $(BINARY)
