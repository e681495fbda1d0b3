#!/usr/bin/env bash
# The cluster benchmark (after the release build; this script builds
# nothing): runs cilium-bench-cluster and writes
# bench/cluster/results/<UTC date-time>.md. Flags pass through
# (`./bench/cluster/run.sh --rounds 1 --seconds 2 --endpoints 50`; see
# `target/release/cilium-bench-cluster --help`).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave behind: namespaces, links,
# pins, agent sockets and etcd directories named after the bench's pid.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_BIN:-target/release/cilium-bench-cluster}

bench_require_root bench/cluster/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make bench\` (or cargo build --release --bins -p testbed)"
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_packages sockperf iperf3 etcd-server)
bench_lock 0
out=$(bench_results_file bench/cluster/results)

sweep() {
	local pid=$1 hex
	hex=$(bench_pid_hex "$pid")
	# Agents stop with their parent thread (PDEATHSIG); etcd may not.
	bench_kill_processes TERM "cilium-rs-etcd-$pid-"
	bench_sweep_agents "$pid" "^(cbcl|cilc|cilt)-$pid-" "^(cbv$hex.*|cbr$hex.*|cnp$hex.*)$" \
		/tmp/cilium-rs-etcd-"$pid"-*
}

bench_run "$BIN" "$out" "$@"
