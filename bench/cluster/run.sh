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

cd "$(dirname "$0")/../.."
BIN=${BENCH_BIN:-target/release/cilium-bench-cluster}
PACKAGES="sockperf iperf3 etcd-server"

if [ "$(id -u)" != 0 ]; then
	echo "bench/cluster/run.sh needs root (network namespaces, veths, bpffs)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: run \`make bench\` (or cargo build --release --bins -p testbed)" >&2
	exit 1
fi
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
	echo "installing: $missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# One bench at a time (shared with bench/run.sh): they compete for the CPU.
exec 9>/run/cilium-bench.lock
if ! flock -n 9; then
	echo "another bench is running (/run/cilium-bench.lock)" >&2
	exit 1
fi

mkdir -p bench/cluster/results
out="bench/cluster/results/$(date -u +%Y-%m-%d-%H%M).md"
child=""

sweep() {
	local pid=$1 hex
	hex=$(printf '%06x' $((pid & 0xffffff)))
	# Agents stop with their parent thread (PDEATHSIG); etcd may not.
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" | grep -q -e "--socket /run/cilium-test-$pid-" -e "cilium-rs-etcd-$pid-"; then
			kill -TERM "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^(cbcl|cilc|cilt)-$pid-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep -E "^(cbv$hex.*|cbr$hex.*|cnp$hex.*)$" || true); do
		ip link del dev "$link" 2>/dev/null || true
	done
	rm -rf /sys/fs/bpf/cilium-test-"$pid"-* /run/cilium-test-"$pid"-* \
		/tmp/cilium-test-"$pid"-* /tmp/cilium-rs-etcd-"$pid"-*
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
