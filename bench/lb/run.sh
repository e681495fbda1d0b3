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

cd "$(dirname "$0")/../.."
BIN=${BENCH_LB_BIN:-target/release/cilium-bench-lb}
PACKAGES="iptables"

if [ "$(id -u)" != 0 ]; then
	echo "bench/lb/run.sh needs root (network namespaces, veths, bpffs, iptables)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: run \`make build\` (or cargo build --release --workspace --bins)" >&2
	exit 1
fi
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
	echo "installing: $missing"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# One bench at a time (shared with bench/run.sh): both toggle ip_forward
# and would disturb each other's measurements.
exec 9>/run/cilium-bench.lock
if ! flock -w 1200 9; then
	echo "another bench is still running (/run/cilium-bench.lock)" >&2
	exit 1
fi

mkdir -p bench/lb/results
out="bench/lb/results/$(date -u +%Y-%m-%d-%H%M).md"
ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
child=""

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
	tag=$(printf '%05x' $((pid & 0xfffff)))
	hex=$(printf '%06x' $((pid & 0xffffff)))
	# The agent stops with its parent (PDEATHSIG); this catches a straggler.
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" | grep -q -- "--socket /run/cilium-test-$pid-"; then
			kill -TERM "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^(cblb|cilt)-$pid-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep -E "^(cblc$tag|cbls$tag|lxc$hex[0-9a-f]{6})$" || true); do
		ip link del dev "$link" 2>/dev/null || true
	done
	rm -rf /sys/fs/bpf/cilium-test-"$pid"-* /run/cilium-test-"$pid"-* /tmp/cilium-test-"$pid"-*
	rmdir /sys/fs/cgroup/unified/cilium-bench-lb-"$pid" 2>/dev/null || true
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
		sweep "$child"
	fi
	remove_chains
	echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remove_chains
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
