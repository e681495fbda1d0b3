/* Parsing an IPv4 packet into the flow tuple the datapath decides on. */
#ifndef __LIB_IPV4_H_
#define __LIB_IPV4_H_

#include "common.h"

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;		/* ICMP echo: the echo id on the requester's side */
	__be16 dport;
	__u8 protocol;
	__u8 tcp_flags;		/* FIN SYN RST PSH ACK ... as in the TCP header */
	__u8 icmp_type;
	__u8 l4_off;		/* from the start of the packet */
	__u32 length;
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* Returns 0 on success or a drop reason. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);

	if ((void *)(ip + 1) > data_end)
		return DROP_INVALID;
	if (ip->ihl < 5 || ip->version != 4)
		return DROP_INVALID;

	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->protocol = ip->protocol;
	f->sport = 0;
	f->dport = 0;
	f->tcp_flags = 0;
	f->icmp_type = 0;
	f->l4_off = sizeof(struct ethhdr) + ip->ihl * 4;
	f->length = skb->len;

	/* Later fragments carry no L4 header; treat them as port-less. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0;

	void *l4 = (void *)ip + ip->ihl * 4;

	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return DROP_CT_INVALID_HDR;
		f->sport = tcp->source;
		f->dport = tcp->dest;
		f->tcp_flags = ((__u8 *)tcp)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return DROP_CT_INVALID_HDR;
		f->sport = udp->source;
		f->dport = udp->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end)
			return DROP_CT_INVALID_HDR;
		f->icmp_type = icmp->type;
		/* Echo request and reply share the id: put it on the
		 * requester's side so the reply is the reversed tuple. */
		if (icmp->type == ICMP_ECHO)
			f->sport = icmp->un.echo.id;
		else if (icmp->type == ICMP_ECHOREPLY)
			f->dport = icmp->un.echo.id;
		break;
	}
	default:
		break;
	}
	return 0;
}

/* Routing to a local endpoint: rewrite MACs and decrement the TTL. */
static __always_inline int ipv4_route_to(struct __sk_buff *skb, const __u8 *dmac,
					 const __u8 *smac)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > data_end)
		return DROP_INVALID;
	if (ip->ttl <= 1)
		return DROP_INVALID;

	__be16 old = *(__be16 *)&ip->ttl;

	ip->ttl--;
	__be16 new = *(__be16 *)&ip->ttl;

	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (bpf_l3_csum_replace(skb, sizeof(*eth) + offsetof(struct iphdr, check),
				old, new, sizeof(__be16)) < 0)
		return DROP_INVALID;
	return 0;
}

#endif /* __LIB_IPV4_H_ */
