#!/usr/bin/env bash
# The monitor flood benchmark (after the release build; this script builds
# nothing): runs cilium-bench-monitor and writes
# bench/monitor/results/<UTC date-time>.md. Flags pass through, e.g.
# `./bench/monitor/run.sh --rounds 2 --seconds 2` (see
# `target/release/cilium-bench-monitor --help`).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave behind: iperf3 and the
# `cilium monitor` clients, the agent, namespaces, links, pins and
# directories named after the bench's pid.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_BIN:-target/release/cilium-bench-monitor}

bench_require_root bench/monitor/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make bench\` (or cargo build --release --bins)"
# iperf3 (the allowed flow); ss (iproute2) checks that it listens.
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_commands iperf3=iperf3)
bench_lock 600
out=$(bench_results_file bench/monitor/results)

sweep() {
	local pid=$1
	# iperf3 -s runs inside the server pod's namespace.
	bench_del_netns --kill-inside "^cilt-$pid-"
	# The agent (PDEATHSIG stops it), its proxy and the `cilium monitor`
	# clients (PDEATHSIG too) all name the agent's private socket path.
	bench_kill_processes KILL "/run/cilium-test-$pid-"
	bench_del_links "^lxc$(bench_pid_hex "$pid")[0-9a-f]{6}$"
	bench_remove_test_dirs "$pid"
}

bench_run "$BIN" "$out" "$@"
