/* NodePort, LoadBalancer and external IPs over IPv6: lib/nodeport.h's
 * design for IPv6 frontends at the node's devices.
 *
 * A backend on this node gets the client's packet with only the destination
 * translated (its policy sees the client, reserved:world-ipv6 unless the
 * ipcache knows better) and translates its answer back itself (bpf_lxc).
 * A backend on another node gets it from the node's IPv6 address (source
 * NAT, cilium_snat_v6_external) through the tunnel, whose underlay stays
 * IPv4, with world-ipv6 as the source identity; its answer is routed back
 * to the node's IPv6 address, where both translations are undone. */
#ifndef __LIB_NODEPORT6_H_
#define __LIB_NODEPORT6_H_

#include "common.h"
#include "maps.h"
#include "ipv6.h"
#include "ipcache.h"
#include "encap.h"
#include "lb6.h"
#include "nodeport.h"

#define AF_INET6 10

/* Not a packet of an IPv6 external frontend nor an answer to one: the
 * caller goes on with it. */
#define NODEPORT6_PASS (-1000)

static __always_inline void nat6_key_of(struct nat6_key *key, const union v6addr *saddr,
					const union v6addr *daddr, __be16 sport, __be16 dport,
					__u8 proto, __u8 dir)
{
	key->saddr = *saddr;
	key->daddr = *daddr;
	key->sport = sport;
	key->dport = dport;
	key->protocol = proto;
	key->dir = dir;
	key->pad = 0;
}

/* nodeport_snat for IPv6: the client's flow (already DNAT'd to a backend)
 * leaves from `node_ip`, from the port it got first or a free one from
 * the NAT range, recorded both ways. 0 or a drop reason. */
static __always_inline int nodeport6_snat(struct __sk_buff *skb, struct flow6 *f,
					  const union v6addr *node_ip, __u16 rev_nat)
{
	struct nat6_key out_key, in_key;
	struct nat6_entry *known, out = { .to_addr = *node_ip, .rev_nat_index = rev_nat };
	struct nat6_entry in = {
		.to_addr = f->saddr, .to_port = f->l4.sport, .rev_nat_index = rev_nat,
	};
	int i;

	nat6_key_of(&out_key, &f->saddr, &f->daddr, f->l4.sport, f->l4.dport, f->l4.protocol,
		    NAT_DIR_OUT);
	known = bpf_map_lookup_elem(&cilium_snat_v6_external, &out_key);
	if (known)
		return lb6_rewrite(skb, f, 0, &known->to_addr, known->to_port);

	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = bpf_htons(NAT_PORT_MIN + bpf_get_prandom_u32() % NAT_PORT_COUNT);

		nat6_key_of(&in_key, &f->daddr, node_ip, f->l4.dport, port, f->l4.protocol,
			    NAT_DIR_IN);
		if (bpf_map_update_elem(&cilium_snat_v6_external, &in_key, &in, BPF_NOEXIST))
			continue;	/* taken by another client of this backend */
		out.to_port = port;
		if (bpf_map_update_elem(&cilium_snat_v6_external, &out_key, &out, BPF_ANY)) {
			bpf_map_delete_elem(&cilium_snat_v6_external, &in_key);
			return DROP_NAT_NO_MAPPING;
		}
		return lb6_rewrite(skb, f, 0, node_ip, port);
	}
	return DROP_NAT_NO_MAPPING;
}

/* nodeport_unsnat for IPv6: a backend's answer arriving at `node_ip` goes
 * back to the client, from the frontend's address. 1 when translated, 0
 * when the packet is no such answer, or a negative drop reason. */
static __always_inline int nodeport6_unsnat(struct __sk_buff *skb, struct flow6 *f,
					    const union v6addr *node_ip)
{
	struct nat6_entry *client;
	struct nat6_key key;
	union v6addr to;
	__be16 to_port;
	__u16 rev_nat;
	int ret;

	nat6_key_of(&key, &f->saddr, node_ip, f->l4.sport, f->l4.dport, f->l4.protocol,
		    NAT_DIR_IN);
	client = bpf_map_lookup_elem(&cilium_snat_v6_external, &key);
	if (!client)
		return 0;
	to = client->to_addr;
	to_port = client->to_port;
	rev_nat = client->rev_nat_index;
	ret = lb6_rewrite(skb, f, 1, &to, to_port);
	if (!ret)
		ret = lb6_reverse_nat(skb, f, rev_nat);
	return ret ? -ret : 1;
}

/* redirect_by_fib for IPv6: on towards the destination the way the routing
 * table says. The TC action, or a negative drop reason. */
static __always_inline int redirect_by_fib6(struct __sk_buff *skb, const struct flow6 *f)
{
	struct bpf_fib_lookup p = {
		.family = AF_INET6,
		.ifindex = skb->ifindex,
	};
	int ret;

	__builtin_memcpy(p.ipv6_src, f->saddr.addr, 16);
	__builtin_memcpy(p.ipv6_dst, f->daddr.addr, 16);
	ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(p.ifindex, NULL, 0, 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS)
		return -DROP_NO_FIB;
	if (bpf_skb_store_bytes(skb, 0, p.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, p.smac, ETH_ALEN, 0) < 0)
		return -DROP_WRITE_ERROR;
	return bpf_redirect(p.ifindex, 0);
}

/* A client's packet to an external IPv6 frontend `svc`, to the backend the
 * service gives its flow: a local one through its policy program (which
 * remembers the service for the answer), another node's from `node_ip`
 * through the tunnel or, without one, the way the routing table says. The
 * TC action or a negative drop reason. */
static __always_inline int nodeport6_forward(struct __sk_buff *skb, struct flow6 *f,
					     const struct lb6_service *svc,
					     const union v6addr *node_ip, __u32 encap_ifindex)
{
	struct remote_endpoint_info *remote;
	struct endpoint_info *ep;
	__u16 rev_nat = svc->rev_nat_index;
	int ret;

	ret = lb6_translate_to(skb, f, svc);
	if (ret)
		return -ret;
	ep = lookup_local_endpoint6(&f->daddr);
	if (ep) {
		ret = ipv6_route_to(skb, ep->mac, ep->node_mac);
		if (ret)
			return -ret;
		tail_call_endpoint_policy(skb, ep, identity_of6(&f->saddr), rev_nat);
		/* Without its policy program (being set up) the endpoint
		 * could not translate its answer: the client retries. */
		return -DROP_MISSED_TAIL_CALL;
	}
	/* Without an address of its own the node has none to answer from. */
	if (!node_ip->d1 && !node_ip->d2)
		return -DROP_NAT_NO_MAPPING;
	ret = nodeport6_snat(skb, f, node_ip, rev_nat);
	if (ret)
		return -ret;
	remote = ipcache6_lookup(&f->daddr);
	if (remote && remote->tunnel_endpoint && encap_ifindex) {
		ret = encap_and_redirect(skb, encap_ifindex, remote->tunnel_endpoint,
					 WORLD_IPV6_ID);
		return ret < 0 ? -DROP_WRITE_ERROR : ret;
	}
	return redirect_by_fib6(skb, f);
}

/* An IPv6 packet from outside the node: a backend's answer to a NAT'd flow
 * goes back to its client, a client's packet to an external frontend to
 * its backend. NODEPORT6_PASS for anything else, else the TC action or a
 * negative drop reason. */
static __always_inline int nodeport6_from_outside(struct __sk_buff *skb, struct flow6 *f,
						  const union v6addr *node_ip, __u32 encap_ifindex)
{
	struct lb6_service *svc;
	int ret;

	if (f->l4.protocol != NEXTHDR_TCP && f->l4.protocol != NEXTHDR_UDP)
		return NODEPORT6_PASS;
	/* Later fragments carry no ports to translate: they go on as they
	 * are (a NodePort datagram is expected whole). */
	if (!f->l4_off)
		return NODEPORT6_PASS;
	if (ipv6_addr_equal(&f->daddr, node_ip)) {
		ret = nodeport6_unsnat(skb, f, node_ip);
		if (ret < 0)
			return ret;
		if (ret)
			return redirect_by_fib6(skb, f);
	}
	svc = lb6_lookup_service(&f->daddr, f->l4.dport, f->l4.protocol);
	if (svc && (svc->flags & SVC_FLAGS_EXTERNAL))
		return nodeport6_forward(skb, f, svc, node_ip, encap_ifindex);
	return NODEPORT6_PASS;
}

#endif /* __LIB_NODEPORT6_H_ */
