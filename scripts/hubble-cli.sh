#!/usr/bin/env bash
# The real `hubble` CLI for the flow tests (issue 19), built once from Cilium's
# published Go module (the CLI lives in github.com/cilium/cilium/hubble; the
# github.com/cilium/hubble module is not served by the module proxy here).
#
#   scripts/hubble-cli.sh build   build into the cache unless it is there; prints the binary
#   scripts/hubble-cli.sh bin     print the binary's path (no build)
#
# Environment:
#   CILIUM_VERSION  github.com/cilium/cilium module version (default below)
#   HUBBLE_CACHE    cache root (default /var/cache/cilium-rs/hubble); the binary goes to
#                   $HUBBLE_CACHE/$CILIUM_VERSION/bin/hubble
#   GO_NICE         prefix for go commands (default "nice -n 19": only idle CPU)
set -euo pipefail

CILIUM_VERSION=${CILIUM_VERSION:-v1.18.6}
HUBBLE_CACHE=${HUBBLE_CACHE:-/var/cache/cilium-rs/hubble}
GO_NICE=${GO_NICE:-nice -n 19}
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0

log() { echo "hubble-cli: $*" >&2; }
die() { log "$*"; exit 1; }

root=$HUBBLE_CACHE/$CILIUM_VERSION
bin=$root/bin/hubble

build() {
	if [ -x "$bin" ]; then
		log "have $bin"
		echo "$bin"
		return 0
	fi
	command -v go >/dev/null || die "go is not installed"
	local gomod src=$root/src
	gomod=$(cd /tmp && $GO_NICE go mod download -json "github.com/cilium/cilium@$CILIUM_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "go mod download github.com/cilium/cilium@$CILIUM_VERSION gave no GoMod file"
	mkdir -p "$src" "$root/bin"
	{
		echo "// Throw-away module written by scripts/hubble-cli.sh; safe to delete."
		echo "module cilium-rs.local/hubble-build"
		echo
		echo "go 1.24.0"
		echo
		echo "require github.com/cilium/cilium $CILIUM_VERSION"
		# Cilium's go.mod replaces a few dependencies with forks (controller-tools,
		# gobgp, apimachinery for `omitzero`); the module proxy serves none of them
		# here and the CLI needs none of their changes, so the upstream modules are used.
	} >"$src/go.mod"
	cat >"$src/tools.go" <<'GO'
//go:build tools

// Package tools pins the command built by scripts/hubble-cli.sh.
package tools

import _ "github.com/cilium/cilium/hubble"
GO
	local t0=$SECONDS
	log "go mod tidy in $src"
	(cd "$src" && $GO_NICE go mod tidy) || die "go mod tidy failed in $src"
	log "go build github.com/cilium/cilium/hubble"
	(cd "$src" && $GO_NICE go build -trimpath -ldflags "-s -w" -o "$root/bin/.hubble.tmp" github.com/cilium/cilium/hubble) ||
		die "go build github.com/cilium/cilium/hubble failed"
	mv -f "$root/bin/.hubble.tmp" "$bin"
	log "built $bin in $((SECONDS - t0)) s"
	echo "$bin"
}

case ${1:-build} in
build) build ;;
bin) echo "$bin" ;;
*) die "usage: $0 [build|bin]" ;;
esac
