#!/usr/bin/env bash
# The CIDR policy benchmark: runs cilium-bench-policy and writes
# bench/policy/results/<UTC date-time>.md. Flags are passed through, e.g.
#   ./bench/policy/run.sh --sizes 10000 --rounds 3
# (see `target/release/cilium-bench-policy --help`).
#
# The binary cleans up after itself through Drop guards, also on Ctrl-C.
# This script is the safety net for what a SIGKILL would leave: the agent,
# its pod and the baseline's namespace, pins and directories.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_POLICY_BIN:-target/release/cilium-bench-policy}

bench_require_root bench/policy/run.sh "network namespaces, veths, bpffs, iptables"
bench_require_binary "$BIN" "\`make build\` (or cargo build --release --workspace --bins)"
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_packages iptables)
bench_lock 1200
out=$(bench_results_file bench/policy/results)

sweep() {
	local pid=$1 hex
	hex=$(bench_pid_hex "$pid")
	bench_sweep_agents "$pid" "^cilt-$pid-" "^lxc$hex[0-9a-f]{6}$"
}

bench_run "$BIN" "$out" "$@"
