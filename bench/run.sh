#!/usr/bin/env bash
# The datapath benchmark (`make bench`, after the release build): runs
# cilium-bench-datapath and writes bench/results/<UTC date-time>.md.
# Flags are passed through (`./bench/run.sh --rounds 1 --seconds 2`; see
# `target/release/cilium-bench-datapath --help`).
#
# The binary cleans up after itself through Drop guards, also on Ctrl-C.
# This script is the safety net for what a SIGKILL or an abort would leave:
# namespaces, links, pins, the iptables chain, ip_forward.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
BIN=${BENCH_BIN:-target/release/cilium-bench-datapath}
CHAIN=CILIUM_BENCH_FWD

bench_require_root bench/run.sh "network namespaces, veths, bpffs, iptables"
bench_require_binary "$BIN" "\`make bench\` (or cargo build --release --workspace --bins)"
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_packages sockperf iperf3 iptables)
# The plain pods' addresses and the chain are fixed: fail rather than wait.
bench_lock 0
out=$(bench_results_file bench/results)
bench_keep_ip_forward

sweep() {
	local pid=$1 tag hex
	tag=$(bench_pid_tag "$pid")
	hex=$(bench_pid_hex "$pid")
	bench_sweep_agents "$pid" "^(cbench|cilt)-$pid-" \
		"^(cbc$tag|cbs$tag|cb6c$tag|cb6s$tag|cbf$tag[0-9]+|lxc$hex[0-9a-f]{6})$"
}

bench_after() {
	local rule
	while iptables -S FORWARD 2>/dev/null | grep -q -- "-j $CHAIN"; do
		rule=$(iptables -S FORWARD | grep -- "-j $CHAIN" | head -1 | sed 's/^-A FORWARD //')
		# shellcheck disable=SC2086
		iptables -D FORWARD $rule || break
	done
	iptables -F "$CHAIN" 2>/dev/null || true
	iptables -X "$CHAIN" 2>/dev/null || true
	bench_restore_ip_forward
}

bench_run "$BIN" "$out" "$@"
