/* Notifications to the agent's monitor through the cilium_events ring. */
#ifndef __LIB_EVENTS_H_
#define __LIB_EVENTS_H_

#include "maps.h"
#include "ipv4.h"
#include "ipv6.h"
#include "policy.h"

/* Keeps struct event in the object's BTF, where the agent's mirror of it
 * is checked; nothing reads it. */
volatile const struct event event_abi = {};
volatile const struct event6 event6_abi = {};
volatile const struct trace_sock_event trace_sock_event_abi = {};

static __always_inline void event_fill(struct event *ev, __u8 type, __u8 subtype,
				       __u16 ep_id, __u32 ifindex, const struct flow *f,
				       __u32 src_id, __u32 dst_id, __u8 dir)
{
	ev->timestamp = bpf_ktime_get_ns();
	ev->type = type;
	ev->subtype = subtype;
	ev->ep_id = ep_id;
	ev->ifindex = ifindex;
	ev->src_identity = src_id;
	ev->dst_identity = dst_id;
	ev->saddr = f->saddr;
	ev->daddr = f->daddr;
	ev->sport = f->sport;
	ev->dport = f->dport;
	ev->protocol = f->protocol;
	ev->tcp_flags = f->tcp_flags;
	ev->dir = dir;
	ev->length = f->length;
	ev->cpu = bpf_get_smp_processor_id();
}

/* Puts one notification of any kind on the ring; a full ring counts it as
 * lost, which the agent reports. */
static __always_inline void events_output(void *ev, __u64 size)
{
	__u32 zero = 0;
	__u64 *lost;

	if (bpf_ringbuf_output(&cilium_events, ev, size, 0) == 0)
		return;
	lost = bpf_map_lookup_elem(&cilium_events_lost, &zero);
	if (lost)
		(*lost)++;
}

static __always_inline void send_event(struct event *ev)
{
	events_output(ev, sizeof(*ev));
}

/* An IPv6 packet's event, its head filled by event_fill from f->l4. */
static __always_inline void send_event6(struct event6 *ev, const struct flow6 *f)
{
	ev->ev.family = EVENT_FAMILY_IPV6;
	ev->saddr6 = f->saddr;
	ev->daddr6 = f->daddr;
	events_output(ev, sizeof(*ev));
}

static __always_inline int events_wanted(void)
{
	__u32 zero = 0;
	__u32 *wanted = bpf_map_lookup_elem(&cilium_events_wanted, &zero);

	return wanted && *wanted;
}

static __always_inline void send_drop(__u8 reason, __u16 ep_id, __u32 ifindex,
				      const struct flow *f, __u32 src_id, __u32 dst_id,
				      __u8 dir)
{
	struct event ev = {};

	if (!events_wanted())
		return;
	event_fill(&ev, EVENT_DROP, reason, ep_id, ifindex, f, src_id, dst_id, dir);
	send_event(&ev);
}

/* Traces are aggregated like Cilium's default: only new connections and
 * TCP control packets are reported, never every data packet. */
static __always_inline int trace_wanted(__u8 ct_state, const struct flow *f)
{
	return ct_state == CT_NEW || (f->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST));
}

static __always_inline void send_trace(__u8 point, __u8 ct_state, __u16 ep_id,
				       __u32 ifindex, const struct flow *f, __u32 src_id,
				       __u32 dst_id, __u8 dir)
{
	struct event ev = {};

	if (!trace_wanted(ct_state, f) || !events_wanted())
		return;
	event_fill(&ev, EVENT_TRACE, point, ep_id, ifindex, f, src_id, dst_id, dir);
	ev.ct_state = ct_state;
	send_event(&ev);
}

static __always_inline void send_policy_verdict(const struct policy_verdict *v,
						__u16 ep_id, __u32 ifindex,
						const struct flow *f, __u32 src_id,
						__u32 dst_id, __u8 dir)
{
	struct event ev = {};

	if (!events_wanted())
		return;
	event_fill(&ev, EVENT_POLICY_VERDICT, 0, ep_id, ifindex, f, src_id, dst_id, dir);
	ev.verdict = v->allow ? 1 : 0;
	ev.match_type = v->match_type;
	send_event(&ev);
}

/* The same three notifications for IPv6 packets: struct event6. */
static __always_inline void send_drop6(__u8 reason, __u16 ep_id, __u32 ifindex,
				       const struct flow6 *f, __u32 src_id, __u32 dst_id,
				       __u8 dir)
{
	struct event6 ev = {};

	if (!events_wanted())
		return;
	event_fill(&ev.ev, EVENT_DROP, reason, ep_id, ifindex, &f->l4, src_id, dst_id, dir);
	send_event6(&ev, f);
}

static __always_inline void send_trace6(__u8 point, __u8 ct_state, __u16 ep_id,
					__u32 ifindex, const struct flow6 *f, __u32 src_id,
					__u32 dst_id, __u8 dir)
{
	struct event6 ev = {};

	if (!trace_wanted(ct_state, &f->l4) || !events_wanted())
		return;
	event_fill(&ev.ev, EVENT_TRACE, point, ep_id, ifindex, &f->l4, src_id, dst_id, dir);
	ev.ev.ct_state = ct_state;
	send_event6(&ev, f);
}

static __always_inline void send_policy_verdict6(const struct policy_verdict *v,
						 __u16 ep_id, __u32 ifindex,
						 const struct flow6 *f, __u32 src_id,
						 __u32 dst_id, __u8 dir)
{
	struct event6 ev = {};

	if (!events_wanted())
		return;
	event_fill(&ev.ev, EVENT_POLICY_VERDICT, 0, ep_id, ifindex, &f->l4, src_id, dst_id,
		   dir);
	ev.ev.verdict = v->allow ? 1 : 0;
	ev.ev.match_type = v->match_type;
	send_event6(&ev, f);
}

#endif /* __LIB_EVENTS_H_ */
