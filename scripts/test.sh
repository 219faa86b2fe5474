#!/usr/bin/env bash
# Runs switchyard's whole test suite: unit, concurrency (-race) and end-to-end
# tests against the real Docker daemon, an S3-compatible server (versitygw)
# and a registry (Debian's docker-registry) on 127.0.0.1, and the status page
# in a real browser (Debian's chromium), ACME against pebble, and a real
# Flask app under gunicorn behind the proxy.
#
# It installs what the tests need when it is missing, so that it works on a
# fresh machine: docker-registry and chromium from Debian's packages, versitygw with
# `go install`. Docker itself must be running.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
PEBBLE_VERSION=v2.10.1
GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$PATH:$GOBIN_DIR"

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "scripts/test.sh: installing $1 needs root (apt-get); install it yourself or rerun as root" >&2
		exit 1
	fi
}

if ! command -v docker-registry >/dev/null 2>&1 && [ ! -x /usr/bin/docker-registry ]; then
	need_root docker-registry
	echo "scripts/test.sh: installing docker-registry (Debian package)" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi

# Debian packages: chromium (the status page's browser test), gunicorn and
# Flask (a real app behind the proxy), curl (a real client).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v gunicorn >/dev/null 2>&1 || missing+=(gunicorn)
/usr/bin/python3 -c 'import flask' >/dev/null 2>&1 || missing+=(python3-flask)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
	need_root "${missing[*]}"
	echo "scripts/test.sh: installing ${missing[*]} (Debian packages)" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v versitygw >/dev/null 2>&1; then
	echo "scripts/test.sh: installing versitygw $VERSITYGW_VERSION (go install, ~2 min the first time)" >&2
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

if ! command -v pebble >/dev/null 2>&1; then
	echo "scripts/test.sh: installing pebble $PEBBLE_VERSION (Let's Encrypt's ACME test server, go install)" >&2
	go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
fi

if ! docker info >/dev/null 2>&1; then
	echo "scripts/test.sh: the Docker daemon is not reachable (is it running? DOCKER_HOST?)" >&2
	exit 1
fi

go vet ./...
exec go test -race -count=1 -timeout 30m "$@" ./...
