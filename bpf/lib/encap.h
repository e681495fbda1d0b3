/* VXLAN overlay: the source's security identity travels as the VNI, and on
 * the receiving node reaches the destination's ingress enforcement in the
 * packet mark. */
#ifndef __LIB_ENCAP_H_
#define __LIB_ENCAP_H_

#include "common.h"
#include "maps.h"
#include "ipv4.h"
#include "ipcache.h"
#include "metrics.h"

/* Mark layout as in Cilium: identity bits 0-15 in the upper half, bits
 * 16-23 in the low byte, and the magic in bits 8-11. */
#define MARK_MAGIC_IDENTITY 0x0F00
#define MARK_MAGIC_MASK 0x0F00

static __always_inline void set_identity_mark(struct __sk_buff *skb, __u32 identity)
{
	skb->mark = ((identity & 0xFFFF) << 16) | MARK_MAGIC_IDENTITY | ((identity >> 16) & 0xFF);
}

/* Hands a packet routed to local endpoint `ep` to its policy program (a
 * tail call into cilium_call_policy), which enforces its ingress policy
 * against `identity` and delivers it into the container; `rev_nat` is the
 * service to translate its answers back from (0: none). Returns only when
 * the endpoint has no policy program (being set up). */
static __always_inline void tail_call_endpoint_policy(struct __sk_buff *skb,
						      const struct endpoint_info *ep,
						      __u32 identity, __u32 rev_nat)
{
	set_identity_mark(skb, identity);
	skb->cb[0] = ep->ifindex;
	skb->cb[1] = rev_nat;
	bpf_tail_call(skb, &cilium_call_policy, ep->lxc_id);
}

/* Magics whose mark carries a source identity: the overlay's, and the L7
 * proxy's upstream traffic (ingress: already enforced by the proxy; egress:
 * on behalf of a client). */
#define MARK_MAGIC_PROXY_INGRESS 0x0A00
#define MARK_MAGIC_PROXY_EGRESS 0x0B00

/* The identity an overlay program or the proxy left in the mark, or 0; its
 * magic goes to *magic. The mark is cleared so nothing downstream mistakes
 * it for something else. */
static __always_inline __u32 take_identity_mark(struct __sk_buff *skb, __u32 *magic)
{
	__u32 mark = skb->mark;

	*magic = mark & MARK_MAGIC_MASK;
	if (*magic != MARK_MAGIC_IDENTITY && *magic != MARK_MAGIC_PROXY_INGRESS &&
	    *magic != MARK_MAGIC_PROXY_EGRESS)
		return 0;
	skb->mark = 0;
	return (mark >> 16) | ((mark & 0xFF) << 16);
}

/* Hands the packet to the collect-metadata VXLAN device towards `node`. */
static __always_inline int encap_and_redirect(struct __sk_buff *skb, __u32 encap_ifindex,
					      __be32 node, __u32 src_identity)
{
	struct bpf_tunnel_key key = {
		.remote_ipv4 = bpf_ntohl(node),
		.tunnel_id = src_identity,
		.tunnel_ttl = 64,
	};

	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return -1;
	return bpf_redirect(encap_ifindex, 0);
}

/* Hands a packet from another node, decapsulated, to local endpoint `ep`:
 * the endpoint's policy program (a tail call into cilium_call_policy)
 * enforces its ingress policy against the VNI's identity and delivers it
 * straight into the container. Without that program (an endpoint being set
 * up) it goes to the endpoint's veth, whose to-container program enforces
 * the same policy. The other node itself (VNI = host) is remote-node. */
static __always_inline int deliver_from_overlay(struct __sk_buff *skb,
						const struct endpoint_info *ep, __u32 vni)
{
	int ret = ipv4_route_to(skb, ep->mac, ep->node_mac);

	if (ret) {
		update_metrics(skb->len, ret, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	tail_call_endpoint_policy(skb, ep, vni == HOST_ID ? REMOTE_NODE_ID : vni, 0);
	return bpf_redirect(ep->ifindex, 0);
}

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

struct vxlanhdr {
	__be32 flags;		/* only the I flag (VNI valid) */
	__be32 vni;		/* VNI in the upper 24 bits */
};

#define VXLAN_FLAG_VNI 0x08000000
/* Outer IPv4, UDP and VXLAN headers and the inner Ethernet header: what
 * separates the outer Ethernet header from the inner IPv4 header. */
#define VXLAN_DECAP_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + \
			 sizeof(struct vxlanhdr) + sizeof(struct ethhdr))

/* The local endpoint a VXLAN packet from another node is for, if the
 * datapath can take it straight off the wire: an unfragmented IPv4/UDP
 * packet to `node_ip`:`port` with a valid header checksum, without IP
 * options or UDP checksum (our nodes send none), whose lengths agree, with
 * the VNI as the only VXLAN flag, carrying IPv4 to a local endpoint.
 * Anything else is NULL and goes the kernel's way: the VXLAN device. The
 * VNI goes to *vni. */
static __always_inline struct endpoint_info *vxlan_local_destination(struct __sk_buff *skb,
								     __be32 node_ip, __u16 port,
								     __u32 *vni)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct udphdr *udp = (void *)(ip + 1);
	struct vxlanhdr *vx = (void *)(udp + 1);
	struct ethhdr *inner_eth = (void *)(vx + 1);
	struct iphdr *inner = (void *)(inner_eth + 1);

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return NULL;
	if ((void *)(inner + 1) > data_end)
		return NULL;	/* too short, or headers not in the linear part */
	if (*(__u8 *)ip != 0x45 || ip->protocol != IPPROTO_UDP || ip->daddr != node_ip ||
	    (ip->frag_off & bpf_htons(0x3fff)))
		return NULL;
	if (udp->dest != bpf_htons(port) || udp->check)
		return NULL;
	/* The stack would check the outer header's checksum; so do we. */
	if (csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0)))
		return NULL;
	if (bpf_ntohs(ip->tot_len) != skb->len - sizeof(struct ethhdr) ||
	    bpf_ntohs(udp->len) != skb->len - sizeof(struct ethhdr) - sizeof(struct iphdr))
		return NULL;
	if (vx->flags != bpf_htonl(VXLAN_FLAG_VNI) || (vx->vni & bpf_htonl(0xff)))
		return NULL;
	if (inner_eth->h_proto != bpf_htons(ETH_P_IP) || (*(__u8 *)inner >> 4) != 4)
		return NULL;
	*vni = bpf_ntohl(vx->vni) >> 8;
	return lookup_local_endpoint(inner->daddr);
}

#endif /* __LIB_ENCAP_H_ */
