/* NodePort, LoadBalancer and external IPs: services clients outside the
 * cluster reach at a node's device (Cilium's kube-proxy replacement in its
 * SNAT mode).
 *
 * A backend on this node gets the client's packet with only the destination
 * translated; its policy sees the client (reserved:world), and its answer is
 * translated back on its way out (bpf_lxc, reply of an ingress entry with a
 * reverse-NAT index). A backend on another node gets it from this node's
 * address (source NAT, cilium_snat_v4_external), through the tunnel with the
 * world's identity as Cilium does in tunnel mode, so its answer comes back
 * here, where both translations are undone and the answer goes straight
 * out to the client. */
#ifndef __LIB_NODEPORT_H_
#define __LIB_NODEPORT_H_

#include "common.h"
#include "maps.h"
#include "ipv4.h"
#include "lb.h"

#define AF_INET 2

/* Source ports of NAT'd flows: above the kernel's default ephemeral range
 * (32768-60999), so they never take a port the node's own sockets use. */
#define NAT_PORT_MIN 61000
#define NAT_PORT_COUNT (65536 - NAT_PORT_MIN)
#define NAT_PORT_TRIES 16

static __always_inline void nat_key_of(struct nat4_key *key, __be32 saddr, __be32 daddr,
				       __be16 sport, __be16 dport, __u8 proto, __u8 dir)
{
	key->saddr = saddr;
	key->daddr = daddr;
	key->sport = sport;
	key->dport = dport;
	key->protocol = proto;
	key->dir = dir;
	key->pad = 0;
}

/* The client's flow (already DNAT'd to a backend) leaves from `node_ip`,
 * from the port it got first or a free one, recorded both ways. 0 or a
 * drop reason. */
static __always_inline int nodeport_snat(struct __sk_buff *skb, struct flow *f, __be32 node_ip,
					 __u16 rev_nat)
{
	struct nat4_key out_key, in_key;
	struct nat4_entry *known, out = { .to_addr = node_ip, .rev_nat_index = rev_nat };
	struct nat4_entry in = {
		.to_addr = f->saddr, .to_port = f->sport, .rev_nat_index = rev_nat,
	};
	int i;

	nat_key_of(&out_key, f->saddr, f->daddr, f->sport, f->dport, f->protocol, NAT_DIR_OUT);
	known = bpf_map_lookup_elem(&cilium_snat_v4_external, &out_key);
	if (known)
		return lb4_rewrite(skb, f, 0, known->to_addr, known->to_port);

	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__be16 port = bpf_htons(NAT_PORT_MIN + bpf_get_prandom_u32() % NAT_PORT_COUNT);

		nat_key_of(&in_key, f->daddr, node_ip, f->dport, port, f->protocol, NAT_DIR_IN);
		if (bpf_map_update_elem(&cilium_snat_v4_external, &in_key, &in, BPF_NOEXIST))
			continue;	/* taken by another client of this backend */
		out.to_port = port;
		if (bpf_map_update_elem(&cilium_snat_v4_external, &out_key, &out, BPF_ANY)) {
			bpf_map_delete_elem(&cilium_snat_v4_external, &in_key);
			return DROP_NAT_NO_MAPPING;
		}
		return lb4_rewrite(skb, f, 0, node_ip, port);
	}
	return DROP_NAT_NO_MAPPING;
}

/* A backend's answer to a NAT'd flow, arriving at `node_ip`: goes back to
 * the client, from the service's address. 1 when translated, 0 when the
 * packet is no such answer, or a negative drop reason. */
static __always_inline int nodeport_unsnat(struct __sk_buff *skb, struct flow *f, __be32 node_ip)
{
	struct nat4_entry *client;
	struct nat4_key key;
	__u16 rev_nat;
	int ret;

	if (f->protocol != IPPROTO_TCP && f->protocol != IPPROTO_UDP)
		return 0;
	nat_key_of(&key, f->saddr, node_ip, f->sport, f->dport, f->protocol, NAT_DIR_IN);
	client = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (!client)
		return 0;
	rev_nat = client->rev_nat_index;
	ret = lb4_rewrite(skb, f, 1, client->to_addr, client->to_port);
	if (!ret)
		ret = lb4_reverse_nat(skb, f, rev_nat);
	return ret ? -ret : 1;
}

/* Sends a translated packet on towards its destination the way the routing
 * table says, with the next hop's MAC (resolved by the kernel if not yet
 * known). The TC action, or a negative drop reason. */
static __always_inline int redirect_by_fib(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_fib_lookup p = {
		.family = AF_INET,
		.ipv4_src = f->saddr,
		.ipv4_dst = f->daddr,
		.ifindex = skb->ifindex,
	};
	int ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);

	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(p.ifindex, NULL, 0, 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS)
		return -DROP_NO_FIB;
	if (bpf_skb_store_bytes(skb, 0, p.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, p.smac, ETH_ALEN, 0) < 0)
		return -DROP_WRITE_ERROR;
	return bpf_redirect(p.ifindex, 0);
}

#endif /* __LIB_NODEPORT_H_ */
