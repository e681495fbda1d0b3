#!/usr/bin/env bash
# The L7 benchmark (after the release build; this script builds nothing):
# runs cilium-bench-l7 and writes bench/l7/results/<UTC date-time>.md.
# Flags pass through, e.g. `./bench/l7/run.sh --rounds 2 --seconds 2
# --h2-rounds 0` (see `target/release/cilium-bench-l7 --help`).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave behind: processes inside the
# pods' namespaces (nginx workers), the agent and its proxy, namespaces,
# links, pins and directories named after the bench's pid, and the
# autogroup setting.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_BIN:-target/release/cilium-bench-l7}

bench_require_root bench/l7/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make bench\` (or cargo build --release --bins)"
# wrk, h2load (nghttp2-client), curl, and nginx: nginx-light where the
# distribution has it (Debian 12), else nginx. Installed only when missing.
missing=$(bench_missing_commands wrk=wrk h2load=nghttp2-client curl=curl)
if ! command -v nginx >/dev/null; then
	bench_apt_update
	if apt-cache show nginx-light >/dev/null 2>&1; then
		missing="$missing nginx-light"
	else
		missing="$missing nginx"
	fi
fi
# Debian's nginx package would start a system nginx on port 80; the bench
# runs its own.
# shellcheck disable=SC2086
bench_apt_install --no-services $missing
bench_lock 600
out=$(bench_results_file bench/l7/results)

sweep() {
	local pid=$1
	# nginx workers outlive a SIGKILLed master; the pods' namespaces list them.
	bench_del_netns --kill-inside "^cilt-$pid-"
	# The agent and its proxy (PDEATHSIG stops the agent; the proxy
	# outlives agents on purpose) and nginx masters, by their paths.
	bench_kill_processes KILL "/run/cilium-test-$pid-" "/tmp/cilium-bench-l7-$pid/"
	bench_del_links "^lxc$(bench_pid_hex "$pid")[0-9a-f]{6}$"
	bench_remove_test_dirs "$pid" /tmp/cilium-bench-l7-"$pid"
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
