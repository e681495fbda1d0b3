/* Connection tracking of IPv6 flows in cilium_ct6_global: the design of
 * lib/conntrack.h (same entries, lifetimes, lookup order) with IPv6 keys.
 * ICMPv6 errors about a tracked flow are related to it and pass as its
 * replies do. */
#ifndef __LIB_CONNTRACK6_H_
#define __LIB_CONNTRACK6_H_

#include "maps.h"
#include "ipv6.h"
#include "conntrack.h"

static __always_inline void ct6_key_of(const struct flow6 *f, __u8 dir, int reverse,
				       struct ct6_key *key)
{
	key->saddr = reverse ? f->daddr : f->saddr;
	key->daddr = reverse ? f->saddr : f->daddr;
	key->sport = reverse ? f->l4.dport : f->l4.sport;
	key->dport = reverse ? f->l4.sport : f->l4.dport;
	key->protocol = f->l4.protocol;
	key->dir = dir;
	key->pad = 0;
}

/* ICMPv6 messages other than echo have no connection: each is decided on
 * its own (neighbour discovery before any policy, errors as related, the
 * rest by policy on its type). Tracked, they would all share one port-less
 * tuple per address pair, and one allowed type would let every other type
 * through as "established". */
static __always_inline int ct6_untracked(const struct flow6 *f)
{
	return f->l4.protocol == NEXTHDR_ICMP && f->l4.icmp_type != ICMP6_ECHO_REQUEST &&
	       f->l4.icmp_type != ICMP6_ECHO_REPLY;
}

/* ct_find for IPv6. */
static __always_inline struct ct_entry *ct6_find(const struct flow6 *f, __u8 dir, int reverse,
						 __u64 now)
{
	struct ct6_key key;
	struct ct_entry *e;

	if (reverse)
		dir = dir == CT_DIR_EGRESS ? CT_DIR_INGRESS : CT_DIR_EGRESS;
	ct6_key_of(f, dir, reverse, &key);
	e = bpf_map_lookup_elem(&cilium_ct6_global, &key);
	return e && e->expires > now ? e : NULL;
}

/* ct_lookup for IPv6: the same classification and lookup order. */
static __always_inline int ct6_lookup(const struct flow6 *f, __u8 dir, struct ct_state *state)
{
	__u8 handshake = f->l4.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
	int syn = handshake == TCP_FLAG_SYN, syn_ack = handshake == (TCP_FLAG_SYN | TCP_FLAG_ACK);
	int reply_first = syn_ack || (!syn && bpf_ntohs(f->l4.sport) < bpf_ntohs(f->l4.dport));
	__u64 now = ct_now();
	struct ct_entry *e;
	int pass;

	if (ct6_untracked(f))
		return CT_NEW;
	for (pass = 0; pass < 2; pass++) {
		int reverse = pass ^ reply_first;

		if ((reverse && syn) || (!reverse && syn_ack))
			continue;
		e = ct6_find(f, dir, reverse, now);
		if (!e || (!reverse && syn && (e->flags & CT_CLOSING)))
			continue;
		ct_account(e, &f->l4, reverse);
		state->rev_nat = e->rev_nat_index;
		state->proxy_port = reverse ? 0 : e->proxy_port;
		return reverse ? CT_REPLY : CT_ESTABLISHED;
	}
	return CT_NEW;
}

/* ct_create for IPv6. */
static __always_inline void ct6_create(const struct flow6 *f, __u8 dir, __u32 src_identity,
				       const struct ct_state *state)
{
	struct ct6_key key;
	struct ct_entry e = {}, *old;

	if (ct6_untracked(f))
		return;
	ct6_key_of(f, dir, 0, &key);
	e.src_identity = src_identity;
	e.rev_nat_index = state->rev_nat;
	e.proxy_port = state->proxy_port;
	e.flags = (f->l4.tcp_flags & TCP_FLAG_SYN) ? CT_SEEN_SYN : 0;
	ct_account(&e, &f->l4, 0);
	old = bpf_map_lookup_elem(&cilium_ct6_global, &key);
	if (old) {
		*old = e;
		return;
	}
	bpf_map_update_elem(&cilium_ct6_global, &key, &e, BPF_ANY);
}

/* ct_set_proxy_port for IPv6. */
static __always_inline void ct6_set_proxy_port(const struct flow6 *f, __u8 dir, __u16 proxy_port)
{
	struct ct6_key key;
	struct ct_entry *e;

	ct6_key_of(f, dir, 0, &key);
	e = bpf_map_lookup_elem(&cilium_ct6_global, &key);
	if (e)
		e->proxy_port = proxy_port;
}

/* The packet in an ICMPv6 error: its IPv6 header and the first 8 bytes of
 * its L4 header (ports, or ICMPv6 type and echo id). */
struct icmp6_inner {
	struct ipv6hdr ip6;
	__u8 l4[8];
};

/* Whether an ICMPv6 error (destination unreachable, packet too big, time
 * exceeded, parameter problem) seen in direction `dir` is about a flow the
 * endpoint tracks: the offending packet it quotes went the other way, from
 * the error's destination. Only a quote without extension headers is
 * recognised; any other error is decided by policy as ICMPv6 of its type.
 * *rev_nat: the service the quoted packet was translated for, when it is
 * one the endpoint sent to a service (its egress entry's), else 0. */
static __always_inline int ct6_icmp_error_flow(struct __sk_buff *skb, const struct flow6 *f,
					       __u8 dir, __u16 *rev_nat)
{
	struct icmp6_inner in;
	struct flow6 q = {};
	__u8 odir = dir == CT_DIR_EGRESS ? CT_DIR_INGRESS : CT_DIR_EGRESS;
	struct ct_entry *e;
	__u64 now;

	*rev_nat = 0;

	if (f->l4.protocol != NEXTHDR_ICMP || !f->l4_off || f->l4.icmp_type < ICMP6_DEST_UNREACH ||
	    f->l4.icmp_type > ICMP6_PARAM_PROB)
		return 0;
	if (bpf_skb_load_bytes(skb, f->l4_off + 8, &in, sizeof(in)) < 0)
		return 0;
	__builtin_memcpy(&q.saddr, &in.ip6.saddr, 16);
	__builtin_memcpy(&q.daddr, &in.ip6.daddr, 16);
	if (!ipv6_addr_equal(&q.saddr, &f->daddr))
		return 0;
	q.l4.protocol = in.ip6.nexthdr;
	switch (in.ip6.nexthdr) {
	case NEXTHDR_TCP:
	case NEXTHDR_UDP:
		__builtin_memcpy(&q.l4.sport, &in.l4[0], 2);
		__builtin_memcpy(&q.l4.dport, &in.l4[2], 2);
		break;
	case NEXTHDR_ICMP:
		if (in.l4[0] == ICMP6_ECHO_REQUEST)
			__builtin_memcpy(&q.l4.sport, &in.l4[4], 2);
		else if (in.l4[0] == ICMP6_ECHO_REPLY)
			__builtin_memcpy(&q.l4.dport, &in.l4[4], 2);
		else
			return 0;
		break;
	default:
		return 0;
	}
	now = ct_now();
	e = ct6_find(&q, odir, 0, now);
	if (e) {
		*rev_nat = odir == CT_DIR_EGRESS ? e->rev_nat_index : 0;
		return 1;
	}
	return ct6_find(&q, odir, 1, now) != NULL;
}

static __always_inline int ct6_icmp_error_related(struct __sk_buff *skb, const struct flow6 *f,
						  __u8 dir)
{
	__u16 rev_nat = 0;

	return ct6_icmp_error_flow(skb, f, dir, &rev_nat);
}

#endif /* __LIB_CONNTRACK6_H_ */
