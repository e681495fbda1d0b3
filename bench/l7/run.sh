#!/usr/bin/env bash
# The L7 benchmark (after the release build; this script builds nothing):
# runs cilium-bench-l7 and writes bench/l7/results/<UTC date-time>.md.
# Flags pass through, e.g. `./bench/l7/run.sh --rounds 2 --seconds 2
# --h2-rounds 0` (see `target/release/cilium-bench-l7 --help`).
#
# The binary cleans up through Drop guards, also on Ctrl-C. This script is
# the safety net for what a SIGKILL would leave behind: processes inside the
# pods' namespaces (nginx workers), the agent and its proxy, namespaces,
# links, pins and directories named after the bench's pid.
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN=${BENCH_BIN:-target/release/cilium-bench-l7}

if [ "$(id -u)" != 0 ]; then
	echo "bench/l7/run.sh needs root (network namespaces, veths, bpffs)" >&2
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "$BIN not found: run \`make bench\` (or cargo build --release --bins)" >&2
	exit 1
fi

# wrk, h2load (nghttp2-client), curl, and nginx: nginx-light where the
# distribution has it (Debian 12), else nginx. Installed only when missing.
missing=""
command -v wrk >/dev/null || missing="$missing wrk"
command -v h2load >/dev/null || missing="$missing nghttp2-client"
command -v curl >/dev/null || missing="$missing curl"
need_nginx=""
command -v nginx >/dev/null || need_nginx=1
if [ -n "$missing" ] || [ -n "$need_nginx" ]; then
	apt-get update -qq
	if [ -n "$need_nginx" ]; then
		if apt-cache show nginx-light >/dev/null 2>&1; then
			missing="$missing nginx-light"
		else
			missing="$missing nginx"
		fi
	fi
	echo "installing:$missing"
	# Debian's nginx package would start a system nginx on port 80; the
	# bench runs its own, so keep services from starting during install.
	policy=/usr/sbin/policy-rc.d
	added_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		added_policy=1
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	if [ -n "$added_policy" ]; then rm -f "$policy"; fi
fi

# One bench at a time (shared with the other benches): they compete for the CPU.
exec 9>/run/cilium-bench.lock
if ! flock -w 600 9; then
	echo "another bench is still running (/run/cilium-bench.lock)" >&2
	exit 1
fi

mkdir -p bench/l7/results
out="bench/l7/results/$(date -u +%Y-%m-%d-%H%M).md"
child=""

sweep() {
	local pid=$1 hex ns p
	hex=$(printf '%06x' $((pid & 0xffffff)))
	# nginx workers outlive a SIGKILLed master; the pods' namespaces list them.
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^cilt-$pid-" || true); do
		for p in $(ip netns pids "$ns" 2>/dev/null || true); do
			kill -KILL "$p" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	# The agent and its proxy (PDEATHSIG stops the agent; the proxy
	# outlives agents on purpose) and nginx masters, by their paths.
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" |
			grep -q -e "/run/cilium-test-$pid-" -e "/tmp/cilium-bench-l7-$pid/"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep -E "^lxc$hex[0-9a-f]{6}$" || true); do
		ip link del dev "$link" 2>/dev/null || true
	done
	rm -rf /sys/fs/bpf/cilium-test-"$pid"-* /run/cilium-test-"$pid"-* \
		/tmp/cilium-test-"$pid"-* /tmp/cilium-bench-l7-"$pid"
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
