#!/bin/sh
# build-image.sh [TAG]: build the switchyard image without network access
# in the build.
#
# The Go modules are vendored into a temporary copy of the repository (never
# into the working tree), so the Dockerfile's build stage compiles with
# -mod=vendor and needs neither the module proxy nor a module cache mount.
# `go mod vendor` itself needs the modules in the local module cache or a
# reachable GOPROXY. The base images (GO_IMAGE, default golang:1.26, and
# RUNTIME_IMAGE, default scratch) must be present or pullable.
#
# TAG defaults to switchyard:dev; VERSION (default: git describe, else dev)
# is stamped into the binary.
set -eu

tag=${1:-switchyard:dev}
root=$(cd "$(dirname "$0")/.." && pwd)
version=${VERSION:-$(git -C "$root" describe --always --dirty 2>/dev/null || echo dev)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Copy the tree without .git and build outputs; .dockerignore trims the rest.
tar -C "$root" --exclude=./.git --exclude=./vendor --exclude=./switchyard -cf - . | tar -C "$tmp" -xf -
(cd "$tmp" && go mod vendor)
docker build --build-arg VERSION="$version" \
	--build-arg GO_IMAGE="${GO_IMAGE:-golang:1.26}" --build-arg RUNTIME_IMAGE="${RUNTIME_IMAGE:-scratch}" \
	-t "$tag" "$tmp"
echo "built $tag (version $version)"
