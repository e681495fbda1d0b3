# cilium-rs: `make demo` and `make test` are all a fresh machine needs.

CARGO ?= cargo
APT_PACKAGES := clang llvm libbpf-dev bpftool linux-libc-dev iproute2 clang-19 \
	curl netcat-openbsd socat procps \
	podman containernetworking-plugins busybox-static runc \
	sockperf iperf3 iptables \
	protobuf-compiler etcd-server etcd-client docker.io containerd prometheus \
	kcat nghttp2-client util-linux wrk dnsmasq-base bind9-dnsutils dnsperf \
	chromium
SETUP_STAMP := target/.setup-done

.PHONY: setup build demo demo-k8s test bench lint clean-state

setup: $(SETUP_STAMP)

# Installs only what is missing, so repeated runs cost nothing.
$(SETUP_STAMP): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@python3 -c 'import grpc' 2>/dev/null || python3 -m pip install -q grpcio
	@command -v schemathesis >/dev/null || python3 -m pip install -q schemathesis \
		|| python3 -m pip install -q --break-system-packages schemathesis
	@python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest
	@# The real Kubernetes control plane for the Kubernetes tests, built once from the
	@# upstream Go modules into /var/cache/cilium-rs/k8s (a cached run costs nothing).
	@./scripts/k8s-control-plane.sh build >/dev/null
	@# The real hubble CLI for tests/hubble.rs, built once from Cilium's Go module
	@# into /var/cache/cilium-rs/hubble.
	@./scripts/hubble-cli.sh build >/dev/null
	@mkdir -p target && touch $@

build: setup
	$(CARGO) build --release --workspace --bins

demo: build
	./scripts/demo.sh

# The same demo driven by kubectl against a real Kubernetes control plane,
# on a two-node cluster.
demo-k8s: build
	./scripts/demo-k8s.sh

# Unit tests run in parallel; tests that touch the kernel share global state
# (bpffs, netns, the agent socket) and run serially (see .config/nextest.toml).
test: setup
	$(CARGO) build --release --workspace --bins
	$(CARGO) nextest run --release --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: build
	./bench/run.sh
	./bench/lb/run.sh
	./bench/cluster/run.sh
	./bench/l7/run.sh
	./bench/monitor/run.sh
	./bench/policy/run.sh
	./bench/k8s/run.sh
	./bench/fqdn/run.sh
	./bench/hubble/run.sh
