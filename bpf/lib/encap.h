/* VXLAN overlay: the source's security identity travels as the VNI, and on
 * the receiving node reaches the destination's ingress enforcement in the
 * packet mark. */
#ifndef __LIB_ENCAP_H_
#define __LIB_ENCAP_H_

#include "common.h"

/* Mark layout as in Cilium: identity bits 0-15 in the upper half, bits
 * 16-23 in the low byte, and the magic in bits 8-11. */
#define MARK_MAGIC_IDENTITY 0x0F00
#define MARK_MAGIC_MASK 0x0F00

static __always_inline void set_identity_mark(struct __sk_buff *skb, __u32 identity)
{
	skb->mark = ((identity & 0xFFFF) << 16) | MARK_MAGIC_IDENTITY | ((identity >> 16) & 0xFF);
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

#endif /* __LIB_ENCAP_H_ */
