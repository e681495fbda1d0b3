#!/usr/bin/env bash
# The service load-balancing benchmark: runs cilium-bench-lb and writes
# bench/lb/results/<UTC date-time>.md. Flags are passed through, e.g.
#   ./bench/lb/run.sh --sizes 10,1000,10000,60000 --rounds 3 --seconds 2
# (see `target/release/cilium-bench-lb --help`).
#
# The binary cleans up after itself through Drop guards, also on Ctrl-C.
# This script is the safety net for what a SIGKILL or an abort would leave:
# the CBLB-* iptables chains and the PREROUTING jump, namespaces, links,
# the agent's pins and cgroup, ip_forward.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_LB_BIN:-target/release/cilium-bench-lb}

bench_require_root bench/lb/run.sh "network namespaces, veths, bpffs, iptables"
bench_require_binary "$BIN" "\`make build\` (or cargo build --release --workspace --bins)"
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_packages iptables)
bench_lock 1200
out=$(bench_results_file bench/lb/results)
bench_keep_ip_forward

remove_chains() {
	local rule chains
	while rule=$(iptables -w -t nat -S PREROUTING 2>/dev/null | grep -- "-j CBLB-SERVICES" | head -1) && [ -n "$rule" ]; do
		# shellcheck disable=SC2086
		iptables -w -t nat -D ${rule#-A } || break
	done
	chains=$(iptables -w -t nat -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^CBLB-/ {print $2}')
	if [ -n "$chains" ]; then
		{
			echo "*nat"
			for c in $chains; do echo ":$c - [0:0]"; done
			for c in $chains; do echo "-X $c"; done
			echo "COMMIT"
		} | iptables-restore -w --noflush || true
	fi
}

sweep() {
	local pid=$1 tag hex
	tag=$(bench_pid_tag "$pid")
	hex=$(bench_pid_hex "$pid")
	bench_sweep_agents "$pid" "^(cblb|cilt)-$pid-" "^(cblc$tag|cbls$tag|lxc$hex[0-9a-f]{6})$"
	rmdir /sys/fs/cgroup/unified/cilium-bench-lb-"$pid" 2>/dev/null || true
}

bench_after() {
	remove_chains
	bench_restore_ip_forward
}

remove_chains
bench_run "$BIN" "$out" "$@"
