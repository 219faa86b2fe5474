# The switchyard image: one static binary on an empty base.
#
#   docker build -t switchyard --build-arg VERSION=$(git describe --always) .
#   scripts/build-image.sh [TAG]      # the same, offline: vendors the modules first
#
# The base images are build arguments, so that a machine without Docker Hub
# builds with the images it has, without retagging them:
#
#   docker build --build-arg GO_IMAGE=registry.local/golang:1.26 \
#     --build-arg RUNTIME_IMAGE=registry.local/distroless-static .
#
# GO_IMAGE needs Go 1.26, /bin/sh and /etc/ssl/certs/ca-certificates.crt;
# RUNTIME_IMAGE is scratch unless you want a shell in the image.
#
# Managed mode needs the host's Docker socket; the image runs as 65532:65532,
# so give the container the socket's group (or run it as root):
#
#   docker run -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e SWITCHYARD_API_TOKEN=... -p 80:8000 -p 127.0.0.1:8001:8001 switchyard
#
# See docs/container.md.

ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY . .
ARG VERSION=dev
# With a vendor/ directory in the context (scripts/build-image.sh makes one)
# the build needs no network; without it the modules are downloaded.
RUN set -eu; \
    mod=""; \
    if [ -d vendor ]; then mod="-mod=vendor"; fi; \
    CGO_ENABLED=0 go build $mod -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /switchyard ./cmd/switchyard; \
    mkdir -p /out/state /out/configs

FROM ${RUNTIME_IMAGE}
# CA certificates for S3 (and any registry) over HTTPS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /switchyard /switchyard
# The state file and deployment history; mount a volume here to keep them
# across container replacements.
COPY --from=build --chown=65532:65532 /out/state /var/lib/switchyard
# Local deployment configs, read-only: mount a directory here, or set
# SWITCHYARD_CONFIGS=s3://bucket/prefix.
COPY --from=build /out/configs /configs
# The API listens on all interfaces of the container, so managed mode needs
# SWITCHYARD_API_TOKEN (serve refuses a non-loopback API without a token).
ENV SWITCHYARD_LISTEN=:8000 \
    SWITCHYARD_API=0.0.0.0:8001 \
    SWITCHYARD_STATE_DIR=/var/lib/switchyard \
    SWITCHYARD_CONFIGS=/configs
USER 65532:65532
EXPOSE 8000 8001
ENTRYPOINT ["/switchyard"]
CMD ["serve"]
