/* ICMPv6 at an endpoint: neighbour discovery, which no policy ever blocks
 * (Cilium lets neighbour solicitations and advertisements through before
 * any policy), and the neighbour advertisement for the endpoint's gateway
 * answered right here, so the container needs no neighbour entry and the
 * host no NDP proxy. */
#ifndef __LIB_ICMP6_H_
#define __LIB_ICMP6_H_

#include "common.h"
#include "ipv6.h"

#ifndef ETH_P_IPV6
#define ETH_P_IPV6 0x86DD
#endif

/* A neighbour advertisement with its target link-layer address option. */
struct nd_advert {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u8 flags;		/* ND_NA_* */
	__u8 reserved[3];
	union v6addr target;
	__u8 opt_type;		/* ND_OPT_TARGET_LLADDR */
	__u8 opt_len;		/* in units of 8 bytes */
	__u8 lladdr[ETH_ALEN];
};

#define ND_NA_ROUTER 0x80
#define ND_NA_SOLICITED 0x40
#define ND_NA_OVERRIDE 0x20
#define ND_OPT_TARGET_LLADDR 2

/* Neighbour solicitation or advertisement (with an L4 header: not a later
 * fragment). */
static __always_inline int icmp6_is_nd(const struct flow6 *f)
{
	return f->l4.protocol == NEXTHDR_ICMP && f->l4_off &&
	       (f->l4.icmp_type == ICMP6_NS || f->l4.icmp_type == ICMP6_NA);
}

static __always_inline __sum16 icmp6_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__sum16)~s;
}

/* Answers a neighbour solicitation for `router` with an advertisement
 * naming `mac`, sent back out of the veth the solicitation came in on.
 * Returns the program's verdict, or a negative drop reason: a solicitation
 * for anything else (the container's own duplicate address detection
 * included) gets no answer. */
static __always_inline int nd_answer_router(struct __sk_buff *skb, const struct flow6 *f,
					    const union v6addr *router, const __u8 *mac)
{
	struct {
		struct ethhdr eth;
		struct ipv6hdr ip6;
		struct nd_advert na;
	} __attribute__((packed)) r = {};
	struct {
		union v6addr saddr;
		union v6addr daddr;
		__be32 length;
		__be32 nexthdr;
		struct nd_advert na;
	} pseudo = {};
	union v6addr target;
	__u8 solicited = ND_NA_SOLICITED;

	if (f->l4.icmp_type != ICMP6_NS)
		return -DROP_INVALID;
	/* RFC 4861 7.1.1: a solicitation that may have been forwarded is not
	 * one. */
	if (f->hop_limit != 255 || f->l4_off != sizeof(struct ethhdr) + sizeof(struct ipv6hdr))
		return -DROP_INVALID;
	if (bpf_skb_load_bytes(skb, f->l4_off + 8, &target, sizeof(target)) < 0)
		return -DROP_INVALID;
	if (!(router->d1 | router->d2) || !ipv6_addr_equal(&target, router))
		return -DROP_UNKNOWN_TARGET;
	if (bpf_skb_load_bytes(skb, ETH_ALEN, r.eth.h_dest, ETH_ALEN) < 0)
		return -DROP_INVALID;

	__builtin_memcpy(r.eth.h_source, mac, ETH_ALEN);
	r.eth.h_proto = bpf_htons(ETH_P_IPV6);
	r.ip6.version = 6;
	r.ip6.payload_len = bpf_htons(sizeof(struct nd_advert));
	r.ip6.nexthdr = NEXTHDR_ICMP;
	r.ip6.hop_limit = 255;
	pseudo.saddr = *router;
	pseudo.daddr = f->saddr;
	if (!(f->saddr.d1 | f->saddr.d2)) {
		/* From the unspecified address: to all nodes, unsolicited. */
		pseudo.daddr.d1 = 0;
		pseudo.daddr.d2 = 0;
		pseudo.daddr.addr[0] = 0xff;
		pseudo.daddr.addr[1] = 0x02;
		pseudo.daddr.addr[15] = 0x01;
		solicited = 0;
	}
	__builtin_memcpy(&r.ip6.saddr, &pseudo.saddr, 16);
	__builtin_memcpy(&r.ip6.daddr, &pseudo.daddr, 16);

	pseudo.na.type = ICMP6_NA;
	pseudo.na.flags = ND_NA_ROUTER | solicited | ND_NA_OVERRIDE;
	pseudo.na.target = *router;
	pseudo.na.opt_type = ND_OPT_TARGET_LLADDR;
	pseudo.na.opt_len = 1;
	__builtin_memcpy(pseudo.na.lladdr, mac, ETH_ALEN);
	pseudo.length = bpf_htonl(sizeof(struct nd_advert));
	pseudo.nexthdr = bpf_htonl(NEXTHDR_ICMP);
	pseudo.na.checksum = icmp6_csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&pseudo,
							   sizeof(pseudo), 0));
	r.na = pseudo.na;

	if (bpf_skb_change_tail(skb, sizeof(r), 0) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_skb_store_bytes(skb, 0, &r, sizeof(r), 0) < 0)
		return -DROP_WRITE_ERROR;
	return bpf_redirect(skb->ifindex, 0);
}

#endif /* __LIB_ICMP6_H_ */
