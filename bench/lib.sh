# shellcheck shell=bash
# What every bench script (bench/run.sh, bench/*/run.sh) does around its
# binary: the root and binary checks, installing missing packages, the one
# lock all benches share, the results file, and running the binary so that a
# Ctrl-C still lets it unwind, then sweeping what a SIGKILL would leave.
#
# Sourced, not run. It moves to the repository root. A script then calls:
#   bench_require_root SCRIPT WHAT          (WHAT: what root is needed for)
#   bench_require_binary BIN HINT           (HINT: how to build it)
#   bench_apt_install [--no-services] $(bench_missing_packages PKG...)
#   bench_lock WAIT_SECONDS                 (0: fail at once when taken)
#   out=$(bench_results_file DIR)
#   bench_run BIN OUT ARGS...               (never returns)
# and defines `sweep PID` (what a bench process PID may leave behind, built
# from bench_sweep_agents or the bench_kill_processes / bench_del_netns /
# bench_del_links / bench_remove_test_dirs steps below) and, if it changes
# host-wide state, `bench_after` (run once when the script exits).

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BENCH_LOCK=/run/cilium-bench.lock

bench_require_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$1 needs root ($2)" >&2
		exit 1
	fi
}

bench_require_binary() {
	if [ ! -x "$1" ]; then
		echo "$1 not found: run $2" >&2
		exit 1
	fi
}

# The packages among the arguments that dpkg does not know as installed.
bench_missing_packages() {
	local p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || echo "$p"
	done
}

# For each COMMAND=PACKAGE argument: PACKAGE when COMMAND is not on PATH.
bench_missing_commands() {
	local pair
	for pair in "$@"; do
		command -v "${pair%%=*}" >/dev/null || echo "${pair#*=}"
	done
}

BENCH_APT_UPDATED=""

bench_apt_update() {
	if [ -z "$BENCH_APT_UPDATED" ]; then
		apt-get update -qq
		BENCH_APT_UPDATED=1
	fi
}

# Installs the packages given, if any. With --no-services, packages that
# would start a system service (nginx on port 80) are kept from doing so.
bench_apt_install() {
	local no_services="" policy=/usr/sbin/policy-rc.d added_policy=""
	if [ "${1:-}" = --no-services ]; then
		no_services=1
		shift
	fi
	[ $# -gt 0 ] || return 0
	echo "installing: $*"
	bench_apt_update
	if [ -n "$no_services" ] && [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		added_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	if [ -n "$added_policy" ]; then rm -f "$policy"; fi
}

# One bench at a time: they compete for the CPU, and some toggle host-wide
# state (ip_forward, iptables) that would disturb another's measurements.
bench_lock() {
	exec 9>"$BENCH_LOCK"
	if [ "$1" = 0 ]; then
		if ! flock -n 9; then
			echo "another bench is running ($BENCH_LOCK)" >&2
			exit 1
		fi
	elif ! flock -w "$1" 9; then
		echo "another bench is still running ($BENCH_LOCK)" >&2
		exit 1
	fi
}

bench_results_file() {
	mkdir -p "$1"
	echo "$1/$(date -u +%Y-%m-%d-%H%M).md"
}

# The testbed names links after the bench's pid: 5 and 6 hex digits of it.
bench_pid_tag() { printf '%05x' $(($1 & 0xfffff)); }
bench_pid_hex() { printf '%06x' $(($1 & 0xffffff)); }

# bench_kill_processes SIGNAL PATTERN...: signals every process whose
# command line matches one of the grep patterns.
bench_kill_processes() {
	local signal=$1 p
	shift
	local args=()
	for p in "$@"; do args+=(-e "$p"); done
	for p in /proc/[0-9]*; do
		if tr "\\0" " " 2>/dev/null <"$p/cmdline" | grep -q "${args[@]}"; then
			kill "-$signal" "${p#/proc/}" 2>/dev/null || true
		fi
	done
}

# bench_del_netns [--kill-inside] REGEX: deletes the matching namespaces,
# with --kill-inside SIGKILLing the processes in them first (servers that
# outlive a SIGKILLed parent).
bench_del_netns() {
	local kill_inside="" ns p
	if [ "$1" = --kill-inside ]; then
		kill_inside=1
		shift
	fi
	for ns in $(ip netns list | awk '{print $1}' | grep -E "$1" || true); do
		if [ -n "$kill_inside" ]; then
			for p in $(ip netns pids "$ns" 2>/dev/null || true); do
				kill -KILL "$p" 2>/dev/null || true
			done
		fi
		ip netns del "$ns" 2>/dev/null || true
	done
}

bench_del_links() {
	local link
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "$1" || true); do
		ip link del dev "$link" 2>/dev/null || true
	done
}

# The testbed's pins, sockets and temp directories of bench process PID,
# and any further paths given.
bench_remove_test_dirs() {
	local pid=$1
	shift
	rm -rf /sys/fs/bpf/cilium-test-"$pid"-* /run/cilium-test-"$pid"-* /tmp/cilium-test-"$pid"-* "$@"
}

# bench_sweep_agents PID NETNS_REGEX LINK_REGEX [PATH...]: what a bench
# whose agents stop with it (PDEATHSIG) may leave: a straggling agent
# (SIGTERM, found by its private socket), the namespaces and links named
# after PID, the testbed's directories and the PATHs given.
bench_sweep_agents() {
	local pid=$1 netns=$2 links=$3
	shift 3
	bench_kill_processes TERM "--socket /run/cilium-test-$pid-"
	bench_del_netns "$netns"
	bench_del_links "$links"
	bench_remove_test_dirs "$pid" "$@"
}

BENCH_IP_FORWARD=""

bench_keep_ip_forward() {
	BENCH_IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
}

bench_restore_ip_forward() {
	echo "$BENCH_IP_FORWARD" >/proc/sys/net/ipv4/ip_forward
}

BENCH_CHILD=""

bench_cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [ -n "$BENCH_CHILD" ]; then
		kill -TERM "$BENCH_CHILD" 2>/dev/null || true
		wait "$BENCH_CHILD" 2>/dev/null || true
		sweep "$BENCH_CHILD"
	fi
	if declare -F bench_after >/dev/null; then bench_after; fi
	exit "$status"
}

# bench_run BIN OUT ARGS...: runs BIN --output OUT ARGS..., sweeps after
# it, says where the results are, and exits with its status.
bench_run() {
	local bin=$1 out=$2 status child_pid
	shift 2
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# In the background so that the traps run while it cleans up on Ctrl-C.
	"$bin" --output "$out" "$@" &
	BENCH_CHILD=$!
	set +e
	wait "$BENCH_CHILD"
	status=$?
	# A signal interrupts `wait` before the binary finished its cleanup.
	while kill -0 "$BENCH_CHILD" 2>/dev/null; do
		wait "$BENCH_CHILD"
		status=$?
	done
	set -e
	child_pid=$BENCH_CHILD
	BENCH_CHILD=""
	sweep "$child_pid"
	if [ "$status" = 0 ]; then
		echo "results: $out"
	fi
	exit "$status"
}
