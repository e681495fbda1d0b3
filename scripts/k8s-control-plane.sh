#!/usr/bin/env bash
# The real Kubernetes control plane for cilium-rs tests (issue 16), built from
# the published Go modules. See docs/kubernetes-control-plane.md.
#
#   scripts/k8s-control-plane.sh [build [all|k8s|etcd]]
#                                          build kube-apiserver, kube-controller-manager,
#                                          kubectl (and etcd, see ETCD below) into the
#                                          cache, once; prints the bin directory last
#   scripts/k8s-control-plane.sh bin       print the bin directory (no build)
#   scripts/k8s-control-plane.sh up DIR    start etcd + kube-apiserver + kube-controller-manager
#                                          with their state in DIR; writes DIR/kubeconfig,
#                                          DIR/pids, DIR/env; waits for /readyz
#   scripts/k8s-control-plane.sh down DIR  stop what `up DIR` started (by the pids in DIR/pids,
#                                          if their command line still names DIR); removes nothing
#
# Environment:
#   K8S_VERSION  k8s.io/kubernetes module version (default below; "latest" = the newest
#                v1.37.x the Go module proxy serves, one proxy query)
#   K8S_CACHE    cache root (default /var/cache/cilium-rs/k8s); binaries go to
#                $K8S_CACHE/$K8S_VERSION/bin, etcd to $K8S_CACHE/etcd-$ETCD_VERSION/bin
#   ETCD         "build" (default): etcd $ETCD_VERSION built from go.etcd.io/etcd/server/v3;
#                "system": Debian's /usr/bin/etcd (3.4; see the docs for why not)
#   ETCD_VERSION etcd server module version (default below)
#   K8S_PORT_BASE  `up`: etcd client port = base, etcd peer = base+1, kube-apiserver =
#                base+2, kube-controller-manager /healthz = base+3 (default: the first free
#                group of four from a base picked by DIR's name hash, in 20000-29999)
#   K8S_SERVICE_CIDR (10.96.0.0/16; dual stack: an IPv6 range after a comma, for
#                dual-stack and IPv6 Services), K8S_CLUSTER_CIDR (10.244.0.0/16; Nodes get a /24 each
#                in spec.podCIDR; dual stack: an IPv6 CIDR after a comma, of which Nodes
#                get a /64 each, second in spec.podCIDRs),
#                K8S_CONTROLLERS (kube-controller-manager --controllers, "*"),
#                K8S_BIND_ADDRESS (kube-apiserver's listening address, 127.0.0.1),
#                K8S_ADVERTISE_ADDRESS (default: the bind address unless that is loopback,
#                then kube-apiserver picks the host's address),
#                K8S_READY_TIMEOUT (seconds to wait for /readyz, 180),
#                K8S_AUDIT=1 (kube-apiserver writes one JSON line per request it receives to
#                DIR/audit.log: level Metadata, stage RequestReceived only; for counting
#                requests per client, as cilium-bench-k8s does)
#   GO_NICE      prefix for go commands (default "nice -n 19": only idle CPU)
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
K8S_CACHE=${K8S_CACHE:-/var/cache/cilium-rs/k8s}
ETCD=${ETCD:-build}
ETCD_VERSION=${ETCD_VERSION:-v3.6.17}
GO_NICE=${GO_NICE:-nice -n 19}
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0

log() { echo "k8s-control-plane: $*" >&2; }
die() { log "$*"; exit 1; }

resolve_version() {
	if [ "$K8S_VERSION" = latest ]; then
		K8S_VERSION=$(cd /tmp && $GO_NICE go list -m k8s.io/kubernetes@v1.37 2>/dev/null | awk '{print $2}') ||
			true
		if [ -z "$K8S_VERSION" ]; then
			K8S_VERSION=$(cd /tmp && $GO_NICE go list -m k8s.io/kubernetes@latest | awk '{print $2}')
			log "no v1.37.x on the module proxy; using the newest release $K8S_VERSION"
		fi
	fi
	case $K8S_VERSION in v1.*.*) ;; *) die "K8S_VERSION=$K8S_VERSION is not v1.MINOR.PATCH" ;; esac
}

k8s_bin() { echo "$K8S_CACHE/$K8S_VERSION/bin"; }
etcd_bin() {
	if [ "$ETCD" = system ]; then dirname "$(command -v etcd)"; else echo "$K8S_CACHE/etcd-$ETCD_VERSION/bin"; fi
}

K8S_CMDS=(kube-apiserver kube-controller-manager kubectl)

# Builds main packages in a throw-away module in $1/src (go.mod, tools.go, go mod tidy,
# go build -o), each binary written to a temporary name and renamed when complete.
#   $1 cache root  $2 unused  $3 go.mod body (require and replace lines)  $4 ldflags
#   rest: "name=package" to build into $1/bin/name (skipped when it exists)
build_in_module() {
	local root=$1 body=$3 ldflags=$4
	shift 4
	local src=$root/src bin=$root/bin
	mkdir -p "$src" "$bin"
	{
		echo "// Throw-away module written by scripts/k8s-control-plane.sh; safe to delete."
		echo "module cilium-rs.local/k8s-build"
		echo
		echo "go 1.26.0"
		echo
		echo "$body"
	} >"$src/go.mod"
	{
		echo "//go:build tools"
		echo
		echo "// Package tools pins the commands built by scripts/k8s-control-plane.sh."
		echo "package tools"
		echo
		echo "import ("
		local nv
		for nv in "$@"; do echo "	_ \"${nv#*=}\""; done
		echo ")"
	} >"$src/tools.go"
	local t0=$SECONDS
	log "go mod tidy in $src"
	(cd "$src" && $GO_NICE go mod tidy) || die "go mod tidy failed in $src"
	log "go mod tidy: $((SECONDS - t0)) s"
	for nv in "$@"; do
		local name=${nv%%=*} pkg=${nv#*=}
		[ -x "$bin/$name" ] && continue
		t0=$SECONDS
		log "go build $pkg"
		(cd "$src" && $GO_NICE go build -trimpath -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg") ||
			die "go build $pkg failed"
		mv -f "$bin/.$name.tmp" "$bin/$name"
		log "built $bin/$name in $((SECONDS - t0)) s ($(du -h "$bin/$name" | cut -f1))"
		echo "$(date -u +%FT%TZ) $name $((SECONDS - t0))s $(stat -c %s "$bin/$name")B" >>"$root/build.log"
	done
}

build_k8s() {
	local root=$K8S_CACHE/$K8S_VERSION bin
	bin=$(k8s_bin)
	local missing=0 c
	for c in "${K8S_CMDS[@]}"; do [ -x "$bin/$c" ] || missing=1; done
	if [ $missing = 0 ]; then
		for c in "${K8S_CMDS[@]}"; do log "have $bin/$c"; done
		return 0
	fi
	command -v go >/dev/null || die "go is not installed"
	local gomod
	gomod=$(cd /tmp && $GO_NICE go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "go mod download k8s.io/kubernetes@$K8S_VERSION gave no GoMod file"
	# Staging modules: replaced with ./staging/src/... upstream. Only those that
	# k8s.io/kubernetes requires (at v0.0.0) are pinned: the others (sample-controller,
	# sample-cli-plugin) are not in the build graph and not all are published.
	local staging required m v=${K8S_VERSION#v1.} body
	staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u)
	required=$(awk '/^require[[:space:]]*\(/ {r=1; next} r && /^\)/ {r=0} r && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
	body="require k8s.io/kubernetes $K8S_VERSION"$'\n\nreplace (\n'
	for m in $staging; do
		if grep -qxF "$m" <<<"$required"; then
			body+="	$m => $m v0.$v"$'\n'
		else
			log "staging module $m is not required by k8s.io/kubernetes; no replace"
		fi
	done
	body+=")"
	local major=${K8S_VERSION#v} minor
	minor=${major#*.}
	minor=${minor%%.*}
	major=${major%%.*}
	local date ld="-s -w" p
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
		ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
	done
	local args=()
	for c in "${K8S_CMDS[@]}"; do args+=("$c=k8s.io/kubernetes/cmd/$c"); done
	build_in_module "$root" "" "$body" "$ld" "${args[@]}"
}

build_etcd() {
	[ "$ETCD" = system ] && { command -v etcd >/dev/null || die "ETCD=system but no etcd"; return 0; }
	local root=$K8S_CACHE/etcd-$ETCD_VERSION bin
	bin=$(etcd_bin)
	if [ -x "$bin/etcd" ]; then
		log "have $bin/etcd"
		return 0
	fi
	command -v go >/dev/null || die "go is not installed"
	# The etcd server's main package is the root of its module, go.etcd.io/etcd/server/v3
	# (main.go: etcdmain.Main(os.Args)). Its siblings (api, client, pkg, raft) are
	# required at the same exact version, so no replace lines are needed.
	build_in_module "$root" "" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" "-s -w" \
		"etcd=go.etcd.io/etcd/server/v3"
}

build() {
	resolve_version
	local t0=$SECONDS what=${1:-all}
	case $what in all | k8s) build_k8s ;; esac
	case $what in all | etcd) build_etcd ;; esac
	local c
	case $what in all | k8s) for c in "${K8S_CMDS[@]}"; do echo "$(k8s_bin)/$c"; done ;; esac
	case $what in all | etcd) echo "$(etcd_bin)/etcd" ;; esac
	if [ $((SECONDS - t0)) -gt 1 ]; then log "build took $((SECONDS - t0)) s"; fi
	k8s_bin
}

# --- up / down: a control plane as the caller's own processes -----------------------

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

pick_port_base() {
	local b i
	if [ -n "${K8S_PORT_BASE:-}" ]; then
		for i in 0 1 2 3; do
			port_free $((K8S_PORT_BASE + i)) || die "K8S_PORT_BASE=$K8S_PORT_BASE: port $((K8S_PORT_BASE + i)) is in use"
		done
		echo "$K8S_PORT_BASE"
		return
	fi
	b=$((20000 + ($(cksum <<<"$1" | cut -d' ' -f1) % 1000) * 10))
	for i in $(seq 0 999); do
		if port_free "$b" && port_free $((b + 1)) && port_free $((b + 2)) && port_free $((b + 3)); then
			echo "$b"
			return
		fi
		b=$((b + 10))
		[ "$b" -ge 30000 ] && b=20000
	done
	die "no free ports in 20000-29999"
}

# Starts "$name" with its log in $dir/$name.log and records "name pid" in $dir/pids.
start() {
	local dir=$1 name=$2
	shift 2
	nohup "$@" </dev/null >>"$dir/$name.log" 2>&1 &
	echo "$name $!" >>"$dir/pids"
	log "$name: pid $! (log $dir/$name.log)"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

wait_for() { # $1 seconds, $2 what, $3 pid that must stay alive, rest: command
	local deadline=$((SECONDS + $1)) what=$2 pid=$3
	shift 3
	until "$@" >/dev/null 2>&1; do
		alive "$pid" || die "$what: process $pid exited; see its log"
		[ $SECONDS -lt $deadline ] || die "$what: not ready after $1 s"
		sleep 0.5
	done
	alive "$pid" || die "$what: process $pid exited; see its log"
}

kubeconfig() { # $1 server $2 ca file $3 user $4 token
	cat <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: cilium-rs
		  cluster:
		    server: $1
		    certificate-authority-data: $(base64 -w0 <"$2")
		users:
		- name: $3
		  user:
		    token: $4
		contexts:
		- name: cilium-rs
		  context:
		    cluster: cilium-rs
		    user: $3
		current-context: cilium-rs
	EOF
}

up() {
	local dir=${1:?usage: $0 up DIR}
	resolve_version
	local kbin ebin
	kbin=$(k8s_bin)
	ebin=$(etcd_bin)
	local c
	for c in kube-apiserver kube-controller-manager kubectl; do
		[ -x "$kbin/$c" ] || die "$kbin/$c is missing: run '$0 build' first"
	done
	[ -x "$ebin/etcd" ] || die "$ebin/etcd is missing: run '$0 build' first (or ETCD=system)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pids" ]; then
		local name pid
		while read -r name pid; do
			alive "$pid" && die "$dir already has a running control plane ($name pid $pid): '$0 down $dir' first"
		done <"$dir/pids"
		rm -f "$dir/pids"
	fi
	# A failure half-way stops what was started.
	trap "down $(printf %q "$dir")" EXIT
	local base etcd_port peer_port api_port kcm_port
	base=$(pick_port_base "$dir")
	etcd_port=$base peer_port=$((base + 1)) api_port=$((base + 2)) kcm_port=$((base + 3))
	local svc_cidr=${K8S_SERVICE_CIDR:-10.96.0.0/16} pod_cidr=${K8S_CLUSTER_CIDR:-10.244.0.0/16}
	# kube-apiserver listens on K8S_BIND_ADDRESS (agents in other network namespaces
	# reach it there); its self-signed certificate names that address.
	local bind=${K8S_BIND_ADDRESS:-127.0.0.1}
	local advertise=${K8S_ADVERTISE_ADDRESS:-}
	[ -n "$advertise" ] || [ "$bind" = 127.0.0.1 ] || advertise=$bind
	local etcd_url=http://127.0.0.1:$etcd_port server=https://$bind:$api_port

	# etcd: one member on loopback; fsync off when the server has the flag (tests only).
	local nofsync=()
	"$ebin/etcd" --help 2>&1 | grep -q -- --unsafe-no-fsync && nofsync=(--unsafe-no-fsync)
	start "$dir" etcd "$ebin/etcd" --name cilium-rs --data-dir "$dir/etcd" \
		--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "cilium-rs=http://127.0.0.1:$peer_port" "${nofsync[@]}"
	local etcd_pid=$!
	wait_for 60 etcd "$etcd_pid" curl -fsS "$etcd_url/health"

	# Credentials: the service-account key, and bearer tokens for the admin
	# (system:masters) and kube-controller-manager (RBAC's own system:kube-controller-manager).
	[ -f "$dir/sa.key" ] || openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
	if [ ! -f "$dir/tokens.csv" ]; then
		(
			umask 077
			echo "$(openssl rand -hex 24),admin,admin,\"system:masters\"" >"$dir/tokens.csv"
			echo "$(openssl rand -hex 24),system:kube-controller-manager,system:kube-controller-manager" >>"$dir/tokens.csv"
		)
	fi
	local admin_token kcm_token
	admin_token=$(awk -F, '$2 == "admin" {print $1}' "$dir/tokens.csv")
	kcm_token=$(awk -F, '$2 == "system:kube-controller-manager" {print $1}' "$dir/tokens.csv")

	mkdir -p "$dir/apiserver-certs"
	local audit=()
	if [ "${K8S_AUDIT:-}" = 1 ]; then
		printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' \
			'omitStages: [ResponseStarted, ResponseComplete, Panic]' \
			'rules:' '- level: Metadata' >"$dir/audit-policy.yaml"
		audit=(--audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log")
	fi
	start "$dir" kube-apiserver "$kbin/kube-apiserver" \
		--etcd-servers "$etcd_url" \
		--bind-address "$bind" --secure-port "$api_port" \
		${advertise:+--advertise-address "$advertise"} \
		--cert-dir "$dir/apiserver-certs" \
		--service-cluster-ip-range "$svc_cidr" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$dir/sa.key" \
		--service-account-signing-key-file "$dir/sa.key" \
		--authorization-mode Node,RBAC \
		--token-auth-file "$dir/tokens.csv" \
		--allow-privileged=true \
		--profiling=false "${audit[@]}"
	local api_pid=$!
	# The self-signed serving certificate (with its CA after it) appears at start.
	wait_for 60 "kube-apiserver certificate" "$api_pid" test -s "$dir/apiserver-certs/apiserver.crt"
	# apiserver.crt is the serving certificate followed by the self-signed CA that signed
	# it; ca.crt is that CA alone (the controller-manager publishes --root-ca-file as a
	# ClusterTrustBundle, which refuses a certificate without the CA bit).
	awk '/BEGIN CERTIFICATE/ {b = ""} {b = b $0 "\n"} /END CERTIFICATE/ {last = b} END {printf "%s", last}' \
		"$dir/apiserver-certs/apiserver.crt" >"$dir/ca.crt"
	openssl x509 -in "$dir/ca.crt" -noout -ext basicConstraints 2>/dev/null | grep -q CA:TRUE ||
		die "$dir/apiserver-certs/apiserver.crt does not end with a CA certificate"
	kubeconfig "$server" "$dir/ca.crt" admin "$admin_token" >"$dir/kubeconfig.tmp"
	mv -f "$dir/kubeconfig.tmp" "$dir/kubeconfig"
	kubeconfig "$server" "$dir/ca.crt" system:kube-controller-manager "$kcm_token" >"$dir/kube-controller-manager.kubeconfig"
	chmod 600 "$dir/kubeconfig" "$dir/kube-controller-manager.kubeconfig"
	wait_for "${K8S_READY_TIMEOUT:-180}" "kube-apiserver /readyz" "$api_pid" \
		"$kbin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz

	start "$dir" kube-controller-manager "$kbin/kube-controller-manager" \
		--kubeconfig "$dir/kube-controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$kcm_port" \
		--controllers "${K8S_CONTROLLERS:-*}" \
		--leader-elect=false \
		--use-service-account-credentials=true \
		--service-account-private-key-file "$dir/sa.key" \
		--root-ca-file "$dir/ca.crt" \
		--service-cluster-ip-range "$svc_cidr" \
		--allocate-node-cidrs=true --cluster-cidr "$pod_cidr" \
		--node-cidr-mask-size-ipv4 24 --node-cidr-mask-size-ipv6 64
	local kcm_pid=$!
	# No --authentication-kubeconfig: with token auth only, kube-apiserver publishes no
	# kube-system/extension-apiserver-authentication, and the controller-manager asks for
	# it twice a second. /healthz is served without authentication anyway.
	wait_for 120 "kube-controller-manager /healthz" "$kcm_pid" \
		curl -fsSk "https://127.0.0.1:$kcm_port/healthz"

	cat >"$dir/env" <<-EOF
		KUBECONFIG=$dir/kubeconfig
		K8S_BIN=$kbin
		K8S_API_SERVER=$server
		K8S_ETCD=$etcd_url
		K8S_SERVICE_CIDR=$svc_cidr
		K8S_CLUSTER_CIDR=$pod_cidr
	EOF
	trap - EXIT
	log "up: $server (kubeconfig $dir/kubeconfig)"
	echo "$dir/kubeconfig"
}

down() {
	local dir=${1:?usage: $0 down DIR}
	[ -f "$dir/pids" ] || { log "$dir/pids: nothing to stop"; return 0; }
	dir=$(cd "$dir" && pwd)
	local lines name pid i
	mapfile -t lines < <(tac "$dir/pids") # controller-manager, apiserver, etcd
	for i in "${lines[@]}"; do
		read -r name pid <<<"$i"
		alive "$pid" || continue
		# Only our own process: its command line names DIR.
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir" || {
			log "$name: pid $pid is not ours any more; left alone"
			continue
		}
		kill -TERM "$pid" 2>/dev/null || true
		local t
		for t in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then
			log "$name: pid $pid ignored SIGTERM for 10 s; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		log "$name: pid $pid stopped"
	done
}

case ${1:-build} in
build) build "${2:-all}" ;;
bin) resolve_version; k8s_bin ;;
up) up "${2:-}" ;;
down) down "${2:-}" ;;
*) die "usage: $0 [build|bin|up DIR|down DIR]" ;;
esac
