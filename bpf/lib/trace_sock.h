/* Socket LB translations reported like Cilium's trace-sock notifications:
 * the destination before and after connect()/sendmsg() is pointed at a
 * backend (fwd), and before and after recvmsg()/getpeername() is given the
 * service back (rev). Hubble shows them as SOCK flows. Built only while
 * someone listens (events_wanted), like every other event. */
#ifndef __LIB_TRACE_SOCK_H_
#define __LIB_TRACE_SOCK_H_

#include "events.h"
#include "ipcache.h"

/* Cilium's SocketTranslationPoint numbers. */
enum {
	XLATE_PRE_DIRECTION_FWD = 1,
	XLATE_POST_DIRECTION_FWD = 2,
	XLATE_PRE_DIRECTION_REV = 3,
	XLATE_POST_DIRECTION_REV = 4,
};

static __always_inline void trace_sock_fill(struct trace_sock_event *ev,
					    struct bpf_sock_addr *ctx, __u8 point,
					    __be16 port, __u8 proto, __u32 dst_id)
{
	struct event *head = &ev->ev.ev;

	head->timestamp = bpf_ktime_get_ns();
	head->type = EVENT_TRACE_SOCK;
	head->subtype = point;
	head->dst_identity = dst_id;
	head->dport = port;
	head->protocol = proto;
	head->dir = DIR_EGRESS;
	head->cpu = bpf_get_smp_processor_id();
	ev->sock_cookie = bpf_get_socket_cookie(ctx);
	ev->netns_cookie = bpf_get_netns_cookie(ctx);
	ev->cgroup_id = bpf_get_current_cgroup_id();
}

static __always_inline void send_trace_sock4(struct bpf_sock_addr *ctx, __u8 point,
					     __be32 addr, __be16 port, __u8 proto)
{
	struct trace_sock_event ev = {};

	if (!events_wanted())
		return;
	trace_sock_fill(&ev, ctx, point, port, proto, identity_of(addr));
	ev.ev.ev.daddr = addr;
	events_output(&ev, sizeof(ev));
}

static __always_inline void send_trace_sock6(struct bpf_sock_addr *ctx, __u8 point,
					     const union v6addr *addr, __be16 port, __u8 proto)
{
	struct trace_sock_event ev = {};

	if (!events_wanted())
		return;
	trace_sock_fill(&ev, ctx, point, port, proto, identity_of6(addr));
	ev.ev.ev.family = EVENT_FAMILY_IPV6;
	ev.ev.daddr6 = *addr;
	events_output(&ev, sizeof(ev));
}

#endif /* __LIB_TRACE_SOCK_H_ */
