#!/usr/bin/env bash
# The Kubernetes benchmark (issue 16; after the release build, this script
# builds nothing): runs cilium-bench-k8s and writes
# bench/k8s/results/<UTC date-time>.md. Flags pass through, e.g.
#   ./bench/k8s/run.sh --pods 200 --changes 10 --new-pods 5 --quiet-seconds 30
# (see `target/release/cilium-bench-k8s --help`). Needs the control plane's
# binaries (`make setup` builds them once into /var/cache/cilium-rs/k8s).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave: the control plane
# (etcd, kube-apiserver, kube-controller-manager, started with nohup) and
# its directory, the kvstore etcd, agents, namespaces, links, pins.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_K8S_BIN:-target/release/cilium-bench-k8s}

bench_require_root bench/k8s/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make build\` (or cargo build --release --workspace --bins)"
bench_require_binary "$(scripts/k8s-control-plane.sh bin)/kube-apiserver" "\`make setup\` (scripts/k8s-control-plane.sh build)"
bench_lock 1200
out=$(bench_results_file bench/k8s/results)

sweep() {
	local pid=$1 hex
	hex=$(bench_pid_hex "$pid")
	# The control plane outlives a SIGKILLed bench (nohup); every one of its
	# processes, and the bench's kubectl watch, names its directory.
	bench_kill_processes TERM "/tmp/cilium-k8s-$pid-" "cilium-rs-etcd-$pid-"
	sleep 2
	bench_kill_processes KILL "/tmp/cilium-k8s-$pid-" "cilium-rs-etcd-$pid-"
	bench_sweep_agents "$pid" "^(cilc|cilt)-$pid-" "^(cbr$hex.*|cnp$hex.*)$" \
		/tmp/cilium-k8s-"$pid"-* /tmp/cilium-rs-etcd-"$pid"-*
}

bench_run "$BIN" "$out" "$@"
