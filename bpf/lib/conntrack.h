/* Connection tracking: established flows and replies skip the policy lookup. */
#ifndef __LIB_CONNTRACK_H_
#define __LIB_CONNTRACK_H_

#include "maps.h"
#include "ipv4.h"

#define CT_LIFETIME_TCP 21600
#define CT_LIFETIME_SYN 60
#define CT_LIFETIME_NONTCP 60
#define CT_LIFETIME_CLOSING 10

/* CLOCK_MONOTONIC in seconds; the coarse clock (one tick behind at most)
 * is plenty for second-granular expiry and far cheaper per packet. */
static __always_inline __u64 ct_now(void)
{
	return bpf_ktime_get_coarse_ns() / 1000000000ULL;
}

static __always_inline void ct_key_of(const struct flow *f, __u8 dir, int reverse,
				      struct ct_key *key)
{
	key->saddr = reverse ? f->daddr : f->saddr;
	key->daddr = reverse ? f->saddr : f->daddr;
	key->sport = reverse ? f->dport : f->sport;
	key->dport = reverse ? f->sport : f->dport;
	key->protocol = f->protocol;
	key->dir = dir;
	key->pad = 0;
}

static __always_inline __u64 ct_lifetime(const struct flow *f, __u16 flags)
{
	if (f->protocol != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP;
	if (flags & CT_CLOSING)
		return CT_LIFETIME_CLOSING;
	if (!(flags & CT_SEEN_REPLY))
		return CT_LIFETIME_SYN;
	return CT_LIFETIME_TCP;
}

static __always_inline void ct_account(struct ct_entry *e, const struct flow *f,
				       int reply)
{
	__u64 now = ct_now();

	if (reply) {
		e->rx_packets++;
		e->rx_bytes += f->length;
		e->flags |= CT_SEEN_REPLY;
	} else {
		e->tx_packets++;
		e->tx_bytes += f->length;
	}
	if (f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		e->flags |= CT_CLOSING;
	e->expires = now + ct_lifetime(f, e->flags);
}

/* What a flow's entry remembers for its later packets. */
struct ct_state {
	__u16 rev_nat;		/* reverse-NAT index of a service flow */
	__u16 proxy_port;	/* L7 proxy the flow is redirected to */
};

/* ICMP messages other than echo have no connection: each is decided on its
 * own (errors quoting a tracked flow as related, the rest by policy on its
 * type), as over IPv6. Tracked, they would all share one port-less tuple
 * per address pair, and one allowed type would let every other type through
 * as "established" (Cilium shares that tuple too, but still applies policy
 * to established packets, which this datapath skips). */
static __always_inline int ct_untracked(const struct flow *f)
{
	return f->protocol == IPPROTO_ICMP && f->icmp_type != ICMP_ECHO &&
	       f->icmp_type != ICMP_ECHOREPLY;
}

/* The live entry of the flow the packet goes the way of (`reverse` = 0),
 * or of the flow it answers (1), or NULL. */
static __always_inline struct ct_entry *ct_find(const struct flow *f, __u8 dir, int reverse,
						__u64 now)
{
	struct ct_key key;
	struct ct_entry *e;

	if (reverse)
		dir = dir == CT_DIR_EGRESS ? CT_DIR_INGRESS : CT_DIR_EGRESS;
	ct_key_of(f, dir, reverse, &key);
	e = bpf_map_lookup_elem(&cilium_ct4_global, &key);
	return e && e->expires > now ? e : NULL;
}

/* Classifies a packet seen by the endpoint in direction `dir` and refreshes
 * the matching entry. A TCP SYN on an entry that is closing starts over.
 * `state` receives what the entry remembers.
 *
 * Of the two lookups, the likelier goes first, since for a new flow each is
 * a cache miss in a large table: a SYN opens a flow (it is never a reply),
 * a SYN-ACK answers one (it never goes the flow's way); any other packet
 * from the lower port to the higher is most likely a server answering a
 * client's ephemeral port. A SYN in answer to our own SYN (simultaneous
 * open) is therefore a new flow, held to policy. */
static __always_inline int ct_lookup(const struct flow *f, __u8 dir, struct ct_state *state)
{
	__u8 handshake = f->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
	int syn = handshake == TCP_FLAG_SYN, syn_ack = handshake == (TCP_FLAG_SYN | TCP_FLAG_ACK);
	int reply_first = syn_ack || (!syn && bpf_ntohs(f->sport) < bpf_ntohs(f->dport));
	__u64 now = ct_now();
	struct ct_entry *e;
	int pass;

	if (ct_untracked(f))
		return CT_NEW;
	for (pass = 0; pass < 2; pass++) {
		int reverse = pass ^ reply_first;

		if ((reverse && syn) || (!reverse && syn_ack))
			continue;
		e = ct_find(f, dir, reverse, now);
		if (!e || (!reverse && syn && (e->flags & CT_CLOSING)))
			continue;
		ct_account(e, f, reverse);
		state->rev_nat = e->rev_nat_index;
		state->proxy_port = reverse ? 0 : e->proxy_port;
		return reverse ? CT_REPLY : CT_ESTABLISHED;
	}
	return CT_NEW;
}

/* A tuple's old entry (closing or expired: its port was reused) is
 * overwritten in place. The lookup that classified the packet has just
 * brought it into the cache, where a fresh element from the LRU's free list
 * would be another miss, and its old one a trip back to that list. */
static __always_inline void ct_create(const struct flow *f, __u8 dir, __u32 src_identity,
				      const struct ct_state *state)
{
	struct ct_key key;
	struct ct_entry e = {}, *old;

	if (ct_untracked(f))
		return;
	ct_key_of(f, dir, 0, &key);
	e.src_identity = src_identity;
	e.rev_nat_index = state->rev_nat;
	e.proxy_port = state->proxy_port;
	e.flags = (f->tcp_flags & TCP_FLAG_SYN) ? CT_SEEN_SYN : 0;
	ct_account(&e, f, 0);
	old = bpf_map_lookup_elem(&cilium_ct4_global, &key);
	if (old) {
		*old = e;
		return;
	}
	bpf_map_update_elem(&cilium_ct4_global, &key, &e, BPF_ANY);
}

/* Makes the existing entry of a flow send its later packets to the proxy. */
static __always_inline void ct_set_proxy_port(const struct flow *f, __u8 dir, __u16 proxy_port)
{
	struct ct_key key;
	struct ct_entry *e;

	ct_key_of(f, dir, 0, &key);
	e = bpf_map_lookup_elem(&cilium_ct4_global, &key);
	if (e)
		e->proxy_port = proxy_port;
}

/* Whether an ICMP error (destination unreachable, time exceeded, parameter
 * problem: Cilium's related types) seen in direction `dir` is about a flow
 * the endpoint tracks: the offending packet it quotes went the other way,
 * from the error's destination. *rev_nat: the service the quoted packet was
 * translated for, when it is one the endpoint sent to a service (its egress
 * entry's), else 0. */
static __always_inline int ct4_icmp_error_flow(struct __sk_buff *skb, const struct flow *f,
					       __u8 dir, __u16 *rev_nat)
{
	struct iphdr in;
	__u8 l4[8];
	struct flow q = {};
	__u8 odir = dir == CT_DIR_EGRESS ? CT_DIR_INGRESS : CT_DIR_EGRESS;
	struct ct_entry *e;
	__u32 off;
	__u64 now;

	*rev_nat = 0;

	if (f->protocol != IPPROTO_ICMP || !f->l4_off ||
	    (f->icmp_type != ICMP_DEST_UNREACH && f->icmp_type != ICMP_TIME_EXCEEDED &&
	     f->icmp_type != ICMP_PARAMETERPROB))
		return 0;
	off = (__u32)f->l4_off + 8;
	if (bpf_skb_load_bytes(skb, off, &in, sizeof(in)) < 0 || in.ihl < 5 || in.saddr != f->daddr)
		return 0;
	if (bpf_skb_load_bytes(skb, off + in.ihl * 4, l4, sizeof(l4)) < 0)
		return 0;
	q.saddr = in.saddr;
	q.daddr = in.daddr;
	q.protocol = in.protocol;
	switch (in.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		__builtin_memcpy(&q.sport, &l4[0], 2);
		__builtin_memcpy(&q.dport, &l4[2], 2);
		break;
	case IPPROTO_ICMP:
		q.icmp_type = l4[0];
		if (l4[0] == ICMP_ECHO)
			__builtin_memcpy(&q.sport, &l4[4], 2);
		else if (l4[0] == ICMP_ECHOREPLY)
			__builtin_memcpy(&q.dport, &l4[4], 2);
		else
			return 0;
		break;
	default:
		return 0;
	}
	now = ct_now();
	e = ct_find(&q, odir, 0, now);
	if (e) {
		*rev_nat = odir == CT_DIR_EGRESS ? e->rev_nat_index : 0;
		return 1;
	}
	return ct_find(&q, odir, 1, now) != NULL;
}

static __always_inline int ct4_icmp_error_related(struct __sk_buff *skb, const struct flow *f,
						  __u8 dir)
{
	__u16 rev_nat = 0;

	return ct4_icmp_error_flow(skb, f, dir, &rev_nat);
}

#endif /* __LIB_CONNTRACK_H_ */
