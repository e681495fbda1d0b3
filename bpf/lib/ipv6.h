/* Parsing an IPv6 packet into the flow tuple the datapath decides on:
 * the extension-header chain is walked (a bounded number of headers, as in
 * Cilium), fragments are decided on their first fragment's L4 header, and
 * anything this cannot make sense of is dropped, never waved through. */
#ifndef __LIB_IPV6_H_
#define __LIB_IPV6_H_

#include <linux/ipv6.h>

#include "common.h"
#include "maps.h"
#include "ipv4.h"

#define NEXTHDR_HOP 0
#define NEXTHDR_TCP 6
#define NEXTHDR_UDP 17
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_ICMP 58
#define NEXTHDR_NONE 59
#define NEXTHDR_DEST 60

/* Extension headers skipped before the L4 header; a longer chain is dropped
 * (Cilium's IPV6_MAX_HEADERS). */
#define IPV6_MAX_EXTHDRS 4

#define ICMP6_DEST_UNREACH 1
#define ICMP6_PKT_TOOBIG 2
#define ICMP6_TIME_EXCEEDED 3
#define ICMP6_PARAM_PROB 4
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
#define ICMP6_NS 135
#define ICMP6_NA 136

/* An IPv6 flow: the L4 part is a struct flow (its IPv4 addresses stay 0),
 * so that policy, conntrack accounting and events take it as it is. */
struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;	/* offset in 8-byte units << 3 | M flag */
	__be32 id;
};

struct flow6 {
	struct flow l4;
	union v6addr saddr;
	union v6addr daddr;
	__u16 l4_off;		/* 0: no L4 header here (a later fragment) */
	__u8 hop_limit;
	__u8 first_fragment;	/* frag holds the header to remember it by */
	struct ipv6_frag frag;
};

#define IPV6_FRAG_OFFSET bpf_htons(0xfff8)
#define IPV6_FRAG_MORE bpf_htons(0x0001)

static __always_inline int ipv6_addr_equal(const union v6addr *a, const union v6addr *b)
{
	return a->d1 == b->d1 && a->d2 == b->d2;
}

static __always_inline void frag6_key_of(const struct flow6 *f, const struct ipv6_frag *frag,
					 struct frag6_key *key)
{
	key->saddr = f->saddr;
	key->daddr = f->daddr;
	key->id = frag->id;
	key->nexthdr = frag->nexthdr;
	key->pad[0] = 0;
	key->pad[1] = 0;
	key->pad[2] = 0;
}

/* A later fragment: its L4 view is its first fragment's, or it is dropped. */
static __always_inline int frag6_restore(struct flow6 *f, const struct ipv6_frag *frag)
{
	struct frag6_key key;
	struct frag6_l4 *l4;

	frag6_key_of(f, frag, &key);
	l4 = bpf_map_lookup_elem(&cilium_ipv6_frag_datagrams, &key);
	if (!l4)
		return DROP_FRAG_NOT_FOUND;
	f->l4.protocol = l4->protocol;
	f->l4.sport = l4->sport;
	f->l4.dport = l4->dport;
	f->l4.icmp_type = l4->icmp_type;
	f->l4_off = 0;
	return 0;
}

/* Remembers a first fragment's L4 view for the later ones. Called once
 * the packet's source is trusted (after the endpoint's anti-spoofing). */
static __always_inline void frag6_register(const struct flow6 *f)
{
	struct frag6_key key;
	struct frag6_l4 l4 = {
		.sport = f->l4.sport,
		.dport = f->l4.dport,
		.protocol = f->l4.protocol,
		.icmp_type = f->l4.icmp_type,
	};

	if (!f->first_fragment)
		return;
	frag6_key_of(f, &f->frag, &key);
	/* A full map only costs the later fragments their delivery. */
	bpf_map_update_elem(&cilium_ipv6_frag_datagrams, &key, &l4, BPF_ANY);
}

/* The L4 header at `off`: ports, TCP flags, ICMPv6 type and echo id.
 * Other protocols are port-less: only L3 rules (any protocol) and rules
 * for that protocol without ports can match them. */
static __always_inline int parse_l4_v6(struct __sk_buff *skb, struct flow6 *f, __u32 off)
{
	__u8 l4[20];

	switch (f->l4.protocol) {
	case NEXTHDR_TCP:
		if (bpf_skb_load_bytes(skb, off, l4, 20) < 0)
			return DROP_CT_INVALID_HDR;
		__builtin_memcpy(&f->l4.sport, &l4[0], 2);
		__builtin_memcpy(&f->l4.dport, &l4[2], 2);
		f->l4.tcp_flags = l4[13];
		break;
	case NEXTHDR_UDP:
		if (bpf_skb_load_bytes(skb, off, l4, 8) < 0)
			return DROP_CT_INVALID_HDR;
		__builtin_memcpy(&f->l4.sport, &l4[0], 2);
		__builtin_memcpy(&f->l4.dport, &l4[2], 2);
		break;
	case NEXTHDR_ICMP:
		if (bpf_skb_load_bytes(skb, off, l4, 8) < 0)
			return DROP_CT_INVALID_HDR;
		f->l4.icmp_type = l4[0];
		/* As for IPv4: the echo id on the requester's side. */
		if (l4[0] == ICMP6_ECHO_REQUEST)
			__builtin_memcpy(&f->l4.sport, &l4[4], 2);
		else if (l4[0] == ICMP6_ECHO_REPLY)
			__builtin_memcpy(&f->l4.dport, &l4[4], 2);
		break;
	default:
		break;
	}
	return 0;
}

/* Returns 0 on success or a drop reason. Hop-by-hop, routing, destination
 * options, AH and one fragment header are skipped, IPV6_MAX_EXTHDRS at
 * most; "no next header" has nothing to decide on. A first fragment is
 * decided on its own L4 header, which frag6_register remembers for the
 * later ones;
 * a later fragment whose first was not seen is dropped (Cilium with its
 * default fragment tracking). */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow6 *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	int fragmented = 0, i;
	__u32 off = sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return DROP_INVALID;
	if (ip6->version != 6)
		return DROP_INVALID;

	__builtin_memcpy(&f->saddr, &ip6->saddr, 16);
	__builtin_memcpy(&f->daddr, &ip6->daddr, 16);
	f->hop_limit = ip6->hop_limit;
	f->first_fragment = 0;
	f->l4.saddr = 0;
	f->l4.daddr = 0;
	f->l4.sport = 0;
	f->l4.dport = 0;
	f->l4.tcp_flags = 0;
	f->l4.icmp_type = 0;
	f->l4.l4_off = 0;
	f->l4.length = skb->len;
	nh = ip6->nexthdr;

	for (i = 0; i <= IPV6_MAX_EXTHDRS; i++) {
		__u8 opt[2];

		switch (nh) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
		case NEXTHDR_AUTH:
		case NEXTHDR_FRAGMENT:
			break;
		case NEXTHDR_NONE:
			return DROP_INVALID_EXTHDR;
		default:
			goto l4;
		}
		if (i == IPV6_MAX_EXTHDRS)
			return DROP_INVALID_EXTHDR;
		if (nh == NEXTHDR_FRAGMENT) {
			/* Two fragment headers make no datagram. */
			if (fragmented)
				return DROP_INVALID_EXTHDR;
			if (bpf_skb_load_bytes(skb, off, &f->frag, sizeof(f->frag)) < 0)
				return DROP_INVALID;
			fragmented = 1;
			if (f->frag.frag_off & IPV6_FRAG_OFFSET)
				return frag6_restore(f, &f->frag);
			nh = f->frag.nexthdr;
			off += sizeof(f->frag);
			continue;
		}
		if (bpf_skb_load_bytes(skb, off, opt, sizeof(opt)) < 0)
			return DROP_INVALID;
		off += nh == NEXTHDR_AUTH ? ((__u32)opt[1] + 2) << 2 : ((__u32)opt[1] + 1) << 3;
		nh = opt[0];
	}
	return DROP_INVALID_EXTHDR;
l4:
	f->l4.protocol = nh;
	f->l4_off = off;
	f->first_fragment = fragmented && (f->frag.frag_off & IPV6_FRAG_MORE);
	return parse_l4_v6(skb, f, off);
}

/* Routing to a local endpoint: rewrite MACs and decrement the hop limit
 * (IPv6 has no header checksum). */
static __always_inline int ipv6_route_to(struct __sk_buff *skb, const __u8 *dmac,
					 const __u8 *smac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);

	if ((void *)(ip6 + 1) > data_end)
		return DROP_INVALID;
	if (ip6->hop_limit <= 1)
		return DROP_INVALID;
	ip6->hop_limit--;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return 0;
}

#endif /* __LIB_IPV6_H_ */
