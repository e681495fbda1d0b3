#!/usr/bin/env bash
# The DNS-aware policy benchmark (issue 17; after the release build, this
# script builds nothing): runs cilium-bench-fqdn and writes
# bench/fqdn/results/<UTC date-time>.md. Flags pass through, e.g.
#   ./bench/fqdn/run.sh --rounds 2 --seconds 2 --fresh 1000 --probes 100
# (see `target/release/cilium-bench-fqdn --help`). Tools: dnsperf, dnsmasq
# and dig (`make setup`; installed here when missing).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave: dnsmasq (it drops root, and
# with it the PDEATHSIG the testbed gives it) and dnsperf in their
# namespaces, the agent and its proxy, namespaces, links, pins and
# directories named after the bench's pid, and the autogroup setting.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_FQDN_BIN:-target/release/cilium-bench-fqdn}

bench_require_root bench/fqdn/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make build\` (or cargo build --release --workspace --bins)"
# shellcheck disable=SC2046
bench_apt_install $(bench_missing_commands dnsperf=dnsperf dnsmasq=dnsmasq-base dig=bind9-dnsutils)
bench_lock 600
out=$(bench_results_file bench/fqdn/results)

sweep() {
	local pid=$1 hex
	hex=$(bench_pid_hex "$pid")
	# dnsmasq in the outside host's namespace, dnsperf in the pod's.
	bench_del_netns --kill-inside "^(cilo|cilt)-$pid-"
	# The agent (PDEATHSIG stops it) and its proxy (which outlives agents
	# on purpose) name the agent's private socket path.
	bench_kill_processes KILL "/run/cilium-test-$pid-"
	bench_sweep_agents "$pid" "^cilc-$pid-" "^(cbr$hex.*|cnp$hex.*|cop$hex.*)$"
}

# The binary turns autogroup scheduling off for the run and back on itself
# (bench/README.md says why); this puts it back after a SIGKILL.
AUTOGROUP=/proc/sys/kernel/sched_autogroup_enabled
autogroup=$(cat "$AUTOGROUP" 2>/dev/null || true)
bench_after() {
	if [ -n "$autogroup" ]; then
		echo "$autogroup" >"$AUTOGROUP"
	fi
}

bench_run "$BIN" "$out" "$@"
