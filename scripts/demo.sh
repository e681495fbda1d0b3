#!/usr/bin/env bash
# `make demo`: runs the release build of cilium-demo (the Makefile builds it
# first). The demo starts cilium-agent on the node's default paths, so it
# needs root and no other agent running.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=target/release/cilium-demo
if [ ! -x "$demo" ]; then
	echo "demo: $demo is missing; run 'cargo build --release --bins' (or 'make demo')" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces, veths, bpffs)" >&2
	exit 1
fi
exec "$demo" "$@"
