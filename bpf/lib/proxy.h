/* Transparent redirection to the L7 proxy (Cilium's TPROXY-less recipe):
 * the packet is assigned to the proxy's socket with bpf_sk_assign and marked
 * "to proxy"; the agent's routing rule for that mark makes the kernel deliver
 * it locally, where the proxy's IP_TRANSPARENT socket receives it with the
 * original destination as its local address.
 *
 * bpf_sk_assign only works on ingress. Traffic whose redirect is decided on
 * the way into a container (tc egress) is turned around first: marked with
 * the proxy port and sent to the ingress of the same host-side veth, where
 * cil_from_container finishes the job. */
#ifndef __LIB_PROXY_H_
#define __LIB_PROXY_H_

#include "common.h"
#include "ipv4.h"
#include "ipv6.h"
#include "encap.h"

/* Cilium's "to proxy" mark; the agent routes it to the local table. */
#define MARK_MAGIC_TO_PROXY 0x0200

#define BPF_TCP_LISTEN 10

/* Hands the packet to `sk` (released here) with the "to proxy" mark. 0 or
 * a drop reason. */
static __always_inline int assign_to(struct __sk_buff *skb, struct bpf_sock *sk)
{
	int ret = bpf_sk_assign(skb, sk, 0);

	bpf_sk_release(sk);
	if (ret)
		return DROP_PROXY_SET_FAILED;
	skb->mark = MARK_MAGIC_TO_PROXY;
	return 0;
}

/* The proxy connection (accepted or half-open, or the proxy's own upstream
 * one) the packet's real tuple belongs to, or NULL. A listener found this
 * way is some host service on the same port, not the proxy. `len` picks
 * the family: sizeof(tuple->ipv4) or sizeof(tuple->ipv6). */
static __always_inline struct bpf_sock *proxy_connection(struct __sk_buff *skb,
							 struct bpf_sock_tuple *tuple, __u32 len)
{
	struct bpf_sock *sk;

	sk = bpf_skc_lookup_tcp(skb, tuple, len, BPF_F_CURRENT_NETNS, 0);
	if (sk && sk->state == BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return NULL;
	}
	return sk;
}

/* Points the tuple at the proxy's port instead of the original one. */
static __always_inline void tuple_to_proxy(struct bpf_sock_tuple *tuple, __u32 len,
					   __u16 proxy_port)
{
	if (len == sizeof(tuple->ipv4))
		tuple->ipv4.dport = bpf_htons(proxy_port);
	else
		tuple->ipv6.dport = bpf_htons(proxy_port);
}

/* Assigns a packet with real tuple `tuple` (of either family, by `len`):
 * a datagram to the proxy's UDP socket on `proxy_port` (the DNS proxy's:
 * one unconnected socket per port, which sees the original destination as
 * the datagram's); a TCP segment to the proxy connection it belongs to, or
 * for a new one to the listener on `proxy_port`. 0 or a drop reason. */
static __always_inline int proxy_assign_tuple(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					      __u32 len, __u8 protocol, __u16 proxy_port)
{
	struct bpf_sock *sk;

	if (protocol == IPPROTO_UDP) {
		tuple_to_proxy(tuple, len, proxy_port);
		sk = bpf_sk_lookup_udp(skb, tuple, len, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return DROP_PROXY_LOOKUP_FAILED;
		return assign_to(skb, sk);
	}
	if (protocol != IPPROTO_TCP)
		return DROP_PROXY_UNKNOWN_PROTO;
	sk = proxy_connection(skb, tuple, len);
	if (sk)
		return assign_to(skb, sk);
	tuple_to_proxy(tuple, len, proxy_port);
	sk = bpf_skc_lookup_tcp(skb, tuple, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_LOOKUP_FAILED;
	return assign_to(skb, sk);
}

static __always_inline void flow_tuple(const struct flow *f, struct bpf_sock_tuple *tuple)
{
	tuple->ipv4.saddr = f->saddr;
	tuple->ipv4.daddr = f->daddr;
	tuple->ipv4.sport = f->sport;
	tuple->ipv4.dport = f->dport;
}

static __always_inline void flow6_tuple(const struct flow6 *f, struct bpf_sock_tuple *tuple)
{
	__builtin_memcpy(tuple->ipv6.saddr, &f->saddr, 16);
	__builtin_memcpy(tuple->ipv6.daddr, &f->daddr, 16);
	tuple->ipv6.sport = f->l4.sport;
	tuple->ipv6.dport = f->l4.dport;
}

/* proxy_assign_tuple for an IPv4 flow. */
static __always_inline int proxy_assign(struct __sk_buff *skb, const struct flow *f,
					__u16 proxy_port)
{
	struct bpf_sock_tuple tuple = {};

	flow_tuple(f, &tuple);
	return proxy_assign_tuple(skb, &tuple, sizeof(tuple.ipv4), f->protocol, proxy_port);
}

/* proxy_assign_tuple for an IPv6 flow: the proxy's sockets listen on [::]
 * beside 0.0.0.0. A later fragment has no L4 header to look up by. */
static __always_inline int proxy_assign6(struct __sk_buff *skb, const struct flow6 *f,
					 __u16 proxy_port)
{
	struct bpf_sock_tuple tuple = {};

	if (!f->l4_off)
		return DROP_PROXY_UNKNOWN_PROTO;
	flow6_tuple(f, &tuple);
	return proxy_assign_tuple(skb, &tuple, sizeof(tuple.ipv6), f->l4.protocol, proxy_port);
}

/* A packet arriving from outside (at a host device's tc ingress) for a
 * connection the proxy terminates under a pod's address: the client's ACK
 * after the proxy accepted its SYN on the pod's behalf. Without the
 * assignment the stack's early demux finds the proxy's socket, routing
 * says "forward to the pod", and ip_forward drops a packet that has a
 * socket: the handshake never completes. Packets of no proxy connection
 * are left alone. */
static __always_inline void proxy_assign_existing(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;

	if (f->protocol != IPPROTO_TCP)
		return;
	flow_tuple(f, &tuple);
	sk = proxy_connection(skb, &tuple, sizeof(tuple.ipv4));
	if (sk)
		assign_to(skb, sk);
}

/* On the way into a container: turn the packet around to the ingress of the
 * container's host-side veth `ifindex`, addressed to that device so the
 * stack accepts it. */
static __always_inline int proxy_hairpin(struct __sk_buff *skb, __u32 ifindex,
					 const __u8 *node_mac, __u16 proxy_port)
{
	if (bpf_skb_store_bytes(skb, 0, node_mac, ETH_ALEN, 0) < 0)
		return -DROP_WRITE_ERROR;
	skb->mark = ((__u32)proxy_port << 16) | MARK_MAGIC_TO_PROXY;
	return bpf_redirect(ifindex, BPF_F_INGRESS);
}

/* The proxy port a hairpinned packet asks for, or 0. */
static __always_inline __u16 proxy_port_from_mark(const struct __sk_buff *skb)
{
	if ((skb->mark & MARK_MAGIC_MASK) != MARK_MAGIC_TO_PROXY)
		return 0;
	return skb->mark >> 16;
}

#endif /* __LIB_PROXY_H_ */
