#!/usr/bin/env bash
# The Hubble flow capture benchmark (after the release build; this script
# builds nothing): runs cilium-bench-hubble and writes
# bench/hubble/results/<UTC date-time>.md. Flags pass through, e.g.
# `./bench/hubble/run.sh --rounds 2 --seconds 2 --memory-pairs 1` (see
# `target/release/cilium-bench-hubble --help`).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave behind: nginx and the
# following client, the agents, namespaces, links, pins and directories
# named after the bench's pid.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
BIN=${BENCH_BIN:-target/release/cilium-bench-hubble}

bench_require_root bench/hubble/run.sh "network namespaces, veths, bpffs"
bench_require_binary "$BIN" "\`make bench\` (or cargo build --release --bins)"
# wrk, and nginx: nginx-light where the distribution has it (Debian 12),
# else nginx. Installed only when missing.
missing=$(bench_missing_commands wrk=wrk)
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
# The real hubble CLI follows the flows (built once by `make setup`); without
# it the bench follows with `cilium flows --follow` and says so.
if [ ! -x "$(./scripts/hubble-cli.sh bin)" ]; then
	echo "no hubble binary (scripts/hubble-cli.sh build): following with cilium flows" >&2
fi
bench_lock 600
out=$(bench_results_file bench/hubble/results)

sweep() {
	local pid=$1
	# nginx and its workers run inside the server pod's namespace.
	bench_del_netns --kill-inside "^cilt-$pid-"
	# The agents (PDEATHSIG stops them), their proxies and the following
	# clients all name a path of the bench's pid.
	bench_kill_processes KILL "/run/cilium-test-$pid-" "/tmp/cilium-test-$pid-"
	bench_del_links "^lxc$(bench_pid_hex "$pid")[0-9a-f]{6}$"
	bench_remove_test_dirs "$pid"
}

bench_run "$BIN" "$out" "$@"
