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

cd "$(dirname "$0")/../.."
BIN=${BENCH_BIN:-target/release/cilium-bench-monitor}

if [ "$(id -u)" != 0 ]; then
	echo "bench/monitor/run.sh needs root (network namespaces, veths, bpffs)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: run \`make bench\` (or cargo build --release --bins)" >&2
	exit 1
fi
# iperf3 (the allowed flow) and ss (iproute2, checks iperf3 listens).
if ! command -v iperf3 >/dev/null; then
	echo "installing: iperf3"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
fi

# One bench at a time (shared with the other benches): they compete for the CPU.
exec 9>/run/cilium-bench.lock
if ! flock -w 600 9; then
	echo "another bench is still running (/run/cilium-bench.lock)" >&2
	exit 1
fi

mkdir -p bench/monitor/results
out="bench/monitor/results/$(date -u +%Y-%m-%d-%H%M).md"
child=""

sweep() {
	local pid=$1 hex ns p
	hex=$(printf '%06x' $((pid & 0xffffff)))
	# iperf3 -s runs inside the server pod's namespace.
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^cilt-$pid-" || true); do
		for p in $(ip netns pids "$ns" 2>/dev/null || true); do
			kill -KILL "$p" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	# The agent (PDEATHSIG stops it), its proxy and the `cilium monitor`
	# clients (PDEATHSIG too) all name the agent's private socket path.
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" | grep -q -e "/run/cilium-test-$pid-"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep -E "^lxc$hex[0-9a-f]{6}$" || true); do
		ip link del dev "$link" 2>/dev/null || true
	done
	rm -rf /sys/fs/bpf/cilium-test-"$pid"-* /run/cilium-test-"$pid"-* /tmp/cilium-test-"$pid"-*
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
		sweep "$child"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# In the background so that the traps run while it cleans up on Ctrl-C.
"$BIN" --output "$out" "$@" &
child=$!
set +e
wait "$child"
status=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
set -e
child_pid=$child
child=""
sweep "$child_pid"
if [ "$status" = 0 ]; then
	echo "results: $out"
fi
exit "$status"
