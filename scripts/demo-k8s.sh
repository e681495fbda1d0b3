#!/usr/bin/env bash
# `make demo-k8s`: runs the release build of cilium-demo-k8s (the Makefile
# builds it first): Cilium's Star Wars demo driven by kubectl against a real
# Kubernetes control plane, on a two-node testbed cluster. Everything runs in
# private namespaces and directories; it needs root, etcd, and the control
# plane's binaries (`make setup` builds them once into /var/cache/cilium-rs/k8s).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=target/release/cilium-demo-k8s
if [ ! -x "$demo" ]; then
	echo "demo-k8s: $demo is missing; run 'cargo build --release --bins' (or 'make demo-k8s')" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "demo-k8s: needs root (network namespaces, veths, bpffs)" >&2
	exit 1
fi
exec "$demo" "$@"
