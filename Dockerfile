# syntax=docker/dockerfile:1
#
# Two ways to build this image, with the same result:
#
# With a registry (docker or buildah can pull golang:1.26): make docker, or
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t kms_exporter .
#
# Without one: make image. It builds the binary and puts it with the host's
# CA bundle in .build/image/rootfs/, then replaces the build stage below with
# that directory (--build-context build=.build/image), so nothing is pulled:
# the image is FROM scratch around the binary, as Prometheus' own images copy
# a prebuilt binary.
#
#   docker run --rm -p 10567:10567 kms_exporter:<version> --demo

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=unknown
# make build: the Makefile's flags (CGO_ENABLED=0, -trimpath, the version
# stamped into github.com/prometheus/common/version), nothing of its own.
RUN make build BINARY=/rootfs/kms_exporter VERSION="${VERSION}" REVISION="${REVISION}" \
      BRANCH="${BRANCH}" BUILD_USER=docker BUILD_DATE="${BUILD_DATE}" \
 && /rootfs/kms_exporter --version \
 && mkdir -p /rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/

# Nothing but the static binary and the CA bundle for the HTTPS endpoints of
# KMS and IAM: no shell, no package manager. Runs as 65532 (nonroot).
FROM scratch
COPY --from=build /rootfs/ /
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kms_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Huawei Cloud KMS" \
      org.opencontainers.image.source="https://github.com/kms-exporter/kms_exporter" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
USER 65532:65532
EXPOSE 10567
ENTRYPOINT ["/kms_exporter"]
