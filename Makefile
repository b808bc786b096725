GO        ?= go
BINARY    ?= kms_exporter
PKG       := github.com/prometheus/common/version
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= make
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
LDFLAGS   := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) -X $(PKG).Branch=$(BRANCH) -X $(PKG).BuildUser=$(BUILD_USER) -X $(PKG).BuildDate=$(BUILD_DATE)
# A static binary without build paths: the same flags for make build, the
# release archives and both ways of building the image.
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

IMAGE     ?= kms_exporter
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
BUILDAH   ?= buildah

.PHONY: all build test lint run-demo bench e2e docker image image-test mixin mixin-check helm-check systemd-check release release-test clean

all: lint test build

build:
	$(GOBUILD) -o $(BINARY) .

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd deploy/kubecheck && $(GO) vet ./... && $(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e,image,release ./e2e/
	cd deploy/kubecheck && $(GO) vet ./...

run-demo: build
	./$(BINARY) --demo

bench:
	./bench/run.sh

# The end-to-end test runs the binary make build stamped.
e2e: build
	KMS_EXPORTER=$(CURDIR)/$(BINARY) $(GO) test -tags e2e -count=1 -v -timeout 10m ./e2e/...

# The files rendered from deploy/mixin: the rule files render.jsonnet names,
# and the dashboard of dashboard.jsonnet.
JSONNET   ?= jsonnet
MIXIN_RULES := deploy/helm/kms-exporter/files/prometheus-rules.yaml deploy/kubernetes/base/prometheusrule.yaml deploy/prometheus/alerts.yml
MIXIN_FILES := dashboards/kms.json $(MIXIN_RULES)

mixin: .build/mixin
	for f in $(MIXIN_FILES); do cp .build/mixin/$$f $$f; done

# Fails when a rendered file differs from the checked-in one, or the
# jsonnet is not formatted.
mixin-check: .build/mixin
	jsonnetfmt --test $$(find deploy/mixin -name '*.*sonnet')
	@status=0; for f in $(MIXIN_FILES); do \
		diff -u $$f .build/mixin/$$f || { echo "$$f differs from what deploy/mixin renders: run make mixin"; status=1; }; \
	done; exit $$status

.PHONY: .build/mixin
.build/mixin:
	rm -rf $@ && for f in $(MIXIN_FILES); do mkdir -p $@/$$(dirname $$f); done
	$(JSONNET) -o $@/dashboards/kms.json deploy/mixin/dashboard.jsonnet
	$(JSONNET) -S -m $@ deploy/mixin/render.jsonnet | sed 's|^$@/||' | sort | tr '\n' ' ' | grep -qx '$(sort $(MIXIN_RULES)) ' \
		|| { echo "render.jsonnet does not render exactly $(MIXIN_RULES)"; exit 1; }

# helm lint and helm template with the default values and each of ci/.
# deploy/kubecheck (make test) decodes what the chart renders.
HELM      ?= helm
CHART     := deploy/helm/kms-exporter
helm-check:
	$(HELM) lint --strict $(CHART)
	$(HELM) template kms $(CHART) >/dev/null
	for v in $(CHART)/ci/*-values.yaml; do \
		$(HELM) lint --strict -f $$v $(CHART) && $(HELM) template kms $(CHART) -f $$v >/dev/null || exit 1; \
	done

# systemd-analyze verify on the shipped unit, its ExecStart pointed at a
# binary built here; any finding fails.
systemd-check: build
	rm -rf .build/systemd && mkdir -p .build/systemd
	sed 's|/usr/local/bin/kms_exporter|$(CURDIR)/$(BINARY)|' deploy/systemd/kms_exporter.service >.build/systemd/kms_exporter.service
	@out=$$(systemd-analyze verify .build/systemd/kms_exporter.service 2>&1); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "systemd-analyze verify: no findings"

# The image without a registry: the Dockerfile's build stage is replaced by
# .build/image, which holds the binary built here and the host's CA bundle.
image:
	rm -rf .build/image
	mkdir -p .build/image/rootfs/etc/ssl/certs
	GOOS=linux GOARCH=$(IMAGE_ARCH) $(MAKE) --no-print-directory build BINARY=.build/image/rootfs/kms_exporter VERSION=$(VERSION) REVISION=$(REVISION)
	cp $(CA_BUNDLE) .build/image/rootfs/etc/ssl/certs/ca-certificates.crt
	$(BUILDAH) bud --layers=false --build-context build=.build/image \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		-t $(IMAGE):$(VERSION) .

# Runs the image make image built: --demo answers, uid 65532, labels.
image-test: image
	KMS_IMAGE=$(IMAGE):$(VERSION) KMS_IMAGE_VERSION=$(VERSION) KMS_IMAGE_REVISION=$(REVISION) \
		$(GO) test -tags image -count=1 -v -timeout 5m -run TestImage ./e2e/

# Release archives: one per platform, named like Prometheus' own
# (kms_exporter-0.1.0.linux-amd64.tar.gz), each with the binary, LICENSE,
# README.md and CHANGELOG.md; zip for Windows; sha256sums.txt over all.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
RELEASE_VERSION := $(patsubst v%,%,$(VERSION))
RELEASE_DIR := .build/release
release:
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=kms_exporter-$(RELEASE_VERSION).$$os-$$arch; ext=; \
		[ $$os = windows ] && ext=.exe; \
		mkdir -p $(RELEASE_DIR)/$$name && cp LICENSE README.md CHANGELOG.md $(RELEASE_DIR)/$$name/ || exit 1; \
		GOOS=$$os GOARCH=$$arch $(MAKE) --no-print-directory build BINARY=$(RELEASE_DIR)/$$name/kms_exporter$$ext \
			VERSION=$(VERSION) REVISION=$(REVISION) BRANCH=$(BRANCH) BUILD_DATE=$(BUILD_DATE) || exit 1; \
		if [ $$os = windows ]; then (cd $(RELEASE_DIR) && zip -qrX $$name.zip $$name) || exit 1; \
		else tar -C $(RELEASE_DIR) --owner=0 --group=0 --numeric-owner -czf $(RELEASE_DIR)/$$name.tar.gz $$name || exit 1; fi; \
		rm -rf $(RELEASE_DIR)/$$name; \
	done
	cd $(RELEASE_DIR) && sha256sum *.tar.gz *.zip >sha256sums.txt && cat sha256sums.txt

# Unpacks the linux/amd64 archive and runs --version; checks every archive
# against sha256sums.txt.
release-test: release
	KMS_RELEASE_DIR=$(CURDIR)/$(RELEASE_DIR) KMS_RELEASE_NAME=kms_exporter-$(RELEASE_VERSION) KMS_RELEASE_VERSION=$(VERSION) KMS_RELEASE_REVISION=$(REVISION) \
		$(GO) test -tags release -count=1 -v -run TestRelease ./e2e/

# With a registry: the Dockerfile's build stage compiles in golang:1.26.
docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg BRANCH=$(BRANCH) \
		--build-arg BUILD_DATE=$(BUILD_DATE) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) -t $(IMAGE):$(VERSION) .

clean:
	rm -rf $(BINARY) .build
