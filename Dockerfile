# syntax=docker/dockerfile:1
# The controller image, for people with Docker:
#
#   docker build -t ghcr.io/stageset/stageset-controller:v1.2.3 \
#     --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(date -u -d @$(git log -1 --format=%ct) +%Y-%m-%dT%H:%M:%SZ) .
#
# `make image` builds the same image with no Docker (hack/image): the same
# static binary (CGO_ENABLED=0, -trimpath, -s -w and the version ldflags of
# the Makefile), user 65532:65532, entrypoint and OCI labels. Keep the two in
# step. This file cannot be built in the project's CI, which has no Docker;
# hack/image's test checks the `make image` one. The base here adds what the
# `make image` layer also carries (CA roots, a /tmp) plus distroless's
# /etc/passwd and tzdata, which the binary does not need (it embeds
# time/tzdata).

ARG GO_IMAGE=golang:1.27
ARG BASE_IMAGE=gcr.io/distroless/static:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS builder
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
# The go command fetches this toolchain when the image's Go is older.
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0
WORKDIR /src
# The modules first, so that a source change reuses the download layer.
COPY go.mod go.sum ./
COPY api/go.mod api/go.sum api/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/stageset/stageset-controller/internal/version.Version=${VERSION}" \
      -o /out/stageset-controller .

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="stageset-controller" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/stageset/stageset-controller" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.created="${CREATED}"
# Root-owned, as in the `make image` layer: the non-root user cannot replace it.
COPY --from=builder /out/stageset-controller /stageset-controller
# Numeric, so that the kubelet can verify runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["/stageset-controller"]
