/* Socket-level load balancing, attached to a cgroup: a process connecting
 * (or sending UDP) to a service VIP is pointed at a backend when the socket
 * connects, so no packet ever needs NAT; getpeername() and recvmsg() still
 * show the VIP. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/lb.h"
#include "lib/lb6.h"
#include "lib/trace_sock.h"

/* Picks a backend for a connect or send to vip:vport and remembers the
 * VIP for this socket and backend (for getpeername/recvmsg); NULL when
 * vip:vport is no service or has no backend. */
static __always_inline const struct lb4_backend *sock4_pick(struct bpf_sock_addr *ctx, __be32 vip,
							    __be16 vport, __u8 proto)
{
	struct lb4_service *svc = lb4_lookup_service(vip, vport, proto);
	struct lb4_backend *backend;
	__u32 backend_id;

	if (!svc)
		return NULL;
	backend = lb4_select_backend(vip, vport, proto, svc, &backend_id);
	if (!backend)
		return NULL;

	struct lb4_reverse_sk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = backend->address,
		.port = backend->port,
	};
	struct lb4_reverse_sk orig = {
		.address = vip,
		.port = vport,
		.rev_nat_index = svc->rev_nat_index,
	};

	bpf_map_update_elem(&cilium_lb4_reverse_sk, &key, &orig, BPF_ANY);
	send_trace_sock4(ctx, XLATE_PRE_DIRECTION_FWD, vip, vport, proto);
	send_trace_sock4(ctx, XLATE_POST_DIRECTION_FWD, backend->address, backend->port, proto);
	return backend;
}

/* The VIP this socket was pointed away from, when addr:port is the
 * backend sock4_pick chose for it. */
static __always_inline const struct lb4_reverse_sk *sock4_recall(struct bpf_sock_addr *ctx,
								 __be32 addr, __be16 port)
{
	struct lb4_reverse_sk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = addr,
		.port = port,
	};
	struct lb4_reverse_sk *orig = bpf_map_lookup_elem(&cilium_lb4_reverse_sk, &key);

	if (orig) {
		send_trace_sock4(ctx, XLATE_PRE_DIRECTION_REV, addr, port, ctx->protocol);
		send_trace_sock4(ctx, XLATE_POST_DIRECTION_REV, orig->address, orig->port,
				 ctx->protocol);
	}
	return orig;
}

static __always_inline int sock4_translate(struct bpf_sock_addr *ctx, __u8 proto)
{
	const struct lb4_backend *backend = sock4_pick(ctx, ctx->user_ip4, (__be16)ctx->user_port, proto);

	if (backend) {
		ctx->user_ip4 = backend->address;
		ctx->user_port = backend->port;
	}
	return 1;
}

static __always_inline int sock4_reverse(struct bpf_sock_addr *ctx)
{
	const struct lb4_reverse_sk *orig = sock4_recall(ctx, ctx->user_ip4, (__be16)ctx->user_port);

	if (orig) {
		ctx->user_ip4 = orig->address;
		ctx->user_port = orig->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx, ctx->protocol);
}

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_translate(ctx, IPPROTO_UDP);
}

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

/* IPv6: the same over the cilium_lb6_* maps. An IPv4-mapped address
 * (::ffff:a.b.c.d: a dual-stack AF_INET6 socket reaching IPv4, whose
 * packets are IPv4) is balanced over the IPv4 services instead, as
 * Cilium's connect6 does, the backend given back in mapped form. */
static __always_inline int sock6_v4mapped(const struct bpf_sock_addr *ctx)
{
	return ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 &&
	       ctx->user_ip6[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int sock6_translate_v4mapped(struct bpf_sock_addr *ctx, __u8 proto)
{
	const struct lb4_backend *backend = sock4_pick(ctx, ctx->user_ip6[3], (__be16)ctx->user_port, proto);

	if (backend) {
		ctx->user_ip6[3] = backend->address;
		ctx->user_port = backend->port;
	}
	return 1;
}

static __always_inline int sock6_reverse_v4mapped(struct bpf_sock_addr *ctx)
{
	const struct lb4_reverse_sk *orig = sock4_recall(ctx, ctx->user_ip6[3], (__be16)ctx->user_port);

	if (orig) {
		ctx->user_ip6[3] = orig->address;
		ctx->user_port = orig->port;
	}
	return 1;
}

static __always_inline void sock6_addr(const struct bpf_sock_addr *ctx, union v6addr *addr)
{
	addr->p[0] = ctx->user_ip6[0];
	addr->p[1] = ctx->user_ip6[1];
	addr->p[2] = ctx->user_ip6[2];
	addr->p[3] = ctx->user_ip6[3];
}

static __always_inline void sock6_set_addr(struct bpf_sock_addr *ctx, const union v6addr *addr)
{
	ctx->user_ip6[0] = addr->p[0];
	ctx->user_ip6[1] = addr->p[1];
	ctx->user_ip6[2] = addr->p[2];
	ctx->user_ip6[3] = addr->p[3];
}

static __always_inline int sock6_translate(struct bpf_sock_addr *ctx, __u8 proto)
{
	union v6addr vip;
	__be16 vport = (__be16)ctx->user_port;
	struct lb6_service *svc;
	struct lb6_backend *backend;
	__u32 backend_id;

	sock6_addr(ctx, &vip);
	svc = lb6_lookup_service(&vip, vport, proto);
	if (!svc)
		return 1;
	backend = lb6_select_backend(&vip, vport, proto, svc, &backend_id);
	if (!backend)
		return 1;

	struct lb6_reverse_sk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = backend->address,
		.port = backend->port,
	};
	struct lb6_reverse_sk orig = {
		.address = vip,
		.port = vport,
		.rev_nat_index = svc->rev_nat_index,
	};

	bpf_map_update_elem(&cilium_lb6_reverse_sk, &key, &orig, BPF_ANY);
	send_trace_sock6(ctx, XLATE_PRE_DIRECTION_FWD, &vip, vport, proto);
	send_trace_sock6(ctx, XLATE_POST_DIRECTION_FWD, &backend->address, backend->port, proto);
	sock6_set_addr(ctx, &backend->address);
	ctx->user_port = backend->port;
	return 1;
}

static __always_inline int sock6_reverse(struct bpf_sock_addr *ctx)
{
	struct lb6_reverse_sk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = (__be16)ctx->user_port,
	};
	struct lb6_reverse_sk *orig;

	sock6_addr(ctx, &key.address);
	orig = bpf_map_lookup_elem(&cilium_lb6_reverse_sk, &key);
	if (orig) {
		send_trace_sock6(ctx, XLATE_PRE_DIRECTION_REV, &key.address, key.port, ctx->protocol);
		send_trace_sock6(ctx, XLATE_POST_DIRECTION_REV, &orig->address, orig->port,
				 ctx->protocol);
		sock6_set_addr(ctx, &orig->address);
		ctx->user_port = orig->port;
	}
	return 1;
}

SEC("cgroup/connect6")
int cil_sock6_connect(struct bpf_sock_addr *ctx)
{
	if (sock6_v4mapped(ctx))
		return sock6_translate_v4mapped(ctx, ctx->protocol);
	return sock6_translate(ctx, ctx->protocol);
}

SEC("cgroup/sendmsg6")
int cil_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	if (sock6_v4mapped(ctx))
		return sock6_translate_v4mapped(ctx, IPPROTO_UDP);
	return sock6_translate(ctx, IPPROTO_UDP);
}

SEC("cgroup/recvmsg6")
int cil_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	if (sock6_v4mapped(ctx))
		return sock6_reverse_v4mapped(ctx);
	return sock6_reverse(ctx);
}

SEC("cgroup/getpeername6")
int cil_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	if (sock6_v4mapped(ctx))
		return sock6_reverse_v4mapped(ctx);
	return sock6_reverse(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
