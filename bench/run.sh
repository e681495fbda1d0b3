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

cd "$(dirname "$0")/.."
BIN=${BENCH_BIN:-target/release/cilium-bench-datapath}
PACKAGES="sockperf iperf3 iptables"
CHAIN=CILIUM_BENCH_FWD

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh needs root (network namespaces, veths, bpffs, iptables)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: run \`make bench\` (or cargo build --release --workspace --bins)" >&2
	exit 1
fi
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
	echo "installing: $missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# One bench at a time: the plain pods' addresses and the chain are fixed.
exec 9>/run/cilium-bench.lock
if ! flock -n 9; then
	echo "another bench is running (/run/cilium-bench.lock)" >&2
	exit 1
fi

mkdir -p bench/results
out="bench/results/$(date -u +%Y-%m-%d-%H%M).md"
ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
child=""

sweep() {
	local pid=$1 tag hex
	tag=$(printf '%05x' $((pid & 0xfffff)))
	hex=$(printf '%06x' $((pid & 0xffffff)))
	# The agent stops with its parent (PDEATHSIG); this catches a straggler.
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" | grep -q -- "--socket /run/cilium-test-$pid-"; then
			kill -TERM "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^(cbench|cilt)-$pid-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep -E "^(cbc$tag|cbs$tag|cbf$tag[0-9]+|lxc$hex[0-9a-f]{6})$" || true); do
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
	while iptables -S FORWARD 2>/dev/null | grep -q -- "-j $CHAIN"; do
		rule=$(iptables -S FORWARD | grep -- "-j $CHAIN" | head -1 | sed 's/^-A FORWARD //')
		# shellcheck disable=SC2086
		iptables -D FORWARD $rule || break
	done
	iptables -F "$CHAIN" 2>/dev/null || true
	iptables -X "$CHAIN" 2>/dev/null || true
	echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
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
# A signal interrupts `wait` before the binary finished its cleanup.
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
set -e
child_pid=$child
child=""
sweep "$child_pid"
if [ "$status" = 0 ]; then
	echo "results: $out"
fi
exit "$status"
