# weft: one static binary on a minimal base image.
#
#   docker build -t weft .
#   docker run -p 3200:3200 -p 4317:4317 -p 4318:4318 -v weft-data:/var/weft weft
#
# Without arguments the container runs monolithic weft on the embedded default
# config (HTTP API 3200, gRPC 9095, OTLP 4317/4318), its blocks and WAL under
# /var/weft/data. Pass -config.file=/etc/weft/weft.yaml (mounted) and -target=...
# to run anything else; examples/docker-compose has both layouts.

# The Go release go.mod asks for (its go line).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a change of the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
# CGO_ENABLED=0: no libc, the binary runs on a base with nothing but itself.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION} -X main.branch=${BRANCH} -X main.buildUser=docker" \
      -o /out/weft ./cmd/weft \
 && mkdir -p /out/var/weft

# distroless/static: CA certificates, /etc/passwd with nonroot, tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/weft /usr/bin/weft
COPY --from=build --chown=65532:65532 /out/var/weft /var/weft
WORKDIR /var/weft
VOLUME /var/weft
USER 65532:65532
# HTTP API (query, /metrics, /ready), gRPC (queriers, live-stores, streaming
# search), OTLP gRPC, OTLP HTTP.
EXPOSE 3200 9095 4317 4318
ENTRYPOINT ["/usr/bin/weft"]
