# syntax=docker/dockerfile:1
#
# make docker, or:
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) -t kms_exporter .
#   docker run --rm -p 10567:10567 kms_exporter --demo

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown
# The same version information as the Makefile's LDFLAGS
# (github.com/prometheus/common/version), shown by --version and in
# kms_exporter_build_info.
RUN CGO_ENABLED=0 go build -trimpath -o /out/kms_exporter \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      . \
 && /out/kms_exporter --version

# Static binary on distroless: no shell, no package manager, CA certificates
# for the KMS and IAM endpoints, runs as nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kms_exporter /kms_exporter
USER 65532:65532
EXPOSE 10567
ENTRYPOINT ["/kms_exporter"]
