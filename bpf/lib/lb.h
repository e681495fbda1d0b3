/* Service load balancing: a client's flow to a VIP gets a backend, chosen
 * at random among the service's slots (weights are slot counts) and
 * remembered in a CT_SERVICE entry so every packet of the flow goes to the
 * same backend; replies are translated back to the VIP. */
#ifndef __LIB_LB_H_
#define __LIB_LB_H_

#include "maps.h"
#include "ipv4.h"
#include "conntrack.h"

static __always_inline struct lb4_service *lb4_lookup_service(__be32 addr, __be16 port, __u8 proto)
{
	struct lb4_key key = { .address = addr, .dport = port, .proto = proto };

	return bpf_map_lookup_elem(&cilium_lb4_services_v2, &key);
}

static __always_inline struct lb4_backend *lb4_select_backend(__be32 addr, __be16 port, __u8 proto,
							      const struct lb4_service *svc,
							      __u32 *backend_id)
{
	struct lb4_key key = { .address = addr, .dport = port, .proto = proto };
	struct lb4_service *slot;

	if (!svc->count)
		return NULL;
	key.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&cilium_lb4_services_v2, &key);
	if (!slot)
		return NULL;
	*backend_id = slot->backend_id;
	return bpf_map_lookup_elem(&cilium_lb4_backends_v3, backend_id);
}

/* Rewrites the destination (dst) or source address and port of a TCP or
 * UDP packet, fixing both checksums; the flow follows. */
static __always_inline int lb4_rewrite(struct __sk_buff *skb, struct flow *f, int dst,
				       __be32 new_addr, __be16 new_port)
{
	__be32 old_addr = dst ? f->daddr : f->saddr;
	__be16 old_port = dst ? f->dport : f->sport;
	int addr_off = ETH_HLEN + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	int csum_off, port_off;
	__u64 mangled = 0;

	if (f->protocol == IPPROTO_TCP) {
		csum_off = f->l4_off + offsetof(struct tcphdr, check);
		port_off = f->l4_off + (dst ? offsetof(struct tcphdr, dest) : offsetof(struct tcphdr, source));
	} else if (f->protocol == IPPROTO_UDP) {
		csum_off = f->l4_off + offsetof(struct udphdr, check);
		port_off = f->l4_off + (dst ? offsetof(struct udphdr, dest) : offsetof(struct udphdr, source));
		mangled = BPF_F_MARK_MANGLED_0;	/* a zero UDP checksum stays zero */
	} else {
		return DROP_NO_SERVICE;
	}

	if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
				BPF_F_PSEUDO_HDR | mangled | sizeof(new_addr)) < 0 ||
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr, new_addr,
				sizeof(new_addr)) < 0 ||
	    bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
		return DROP_WRITE_ERROR;
	if (old_port != new_port &&
	    (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)) < 0 ||
	     bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0) < 0))
		return DROP_WRITE_ERROR;

	if (dst) {
		f->daddr = new_addr;
		f->dport = new_port;
	} else {
		f->saddr = new_addr;
		f->sport = new_port;
	}
	return 0;
}

/* A client's packet to service `svc` (its VIP the destination): recalls or
 * picks the backend and rewrites the destination to it. 0 or a drop
 * reason. */
static __always_inline int lb4_translate_to(struct __sk_buff *skb, struct flow *f,
					    const struct lb4_service *svc)
{
	struct lb4_backend *backend = NULL;
	struct ct_entry *e;
	struct ct_key key;
	__u32 backend_id = 0;


	ct_key_of(f, CT_DIR_SERVICE, 0, &key);
	e = bpf_map_lookup_elem(&cilium_ct4_global, &key);
	if (e && e->expires > ct_now()) {
		backend_id = e->backend_id;
		backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
		if (backend)
			ct_account(e, f, 0);
	}
	if (!backend) {
		/* New flow, or its backend was removed: choose again. */
		struct ct_entry fresh = { .rev_nat_index = svc->rev_nat_index };

		backend = lb4_select_backend(f->daddr, f->dport, f->protocol, svc, &backend_id);
		if (!backend)
			return DROP_NO_SERVICE;
		fresh.backend_id = backend_id;
		ct_account(&fresh, f, 0);
		bpf_map_update_elem(&cilium_ct4_global, &key, &fresh, BPF_ANY);
	}
	return lb4_rewrite(skb, f, 1, backend->address, backend->port);
}

/* A client's packet to a VIP: recalls or picks the backend and rewrites the
 * destination to it. 0 also when the destination is no service; then
 * *rev_nat stays 0. */
static __always_inline int lb4_translate(struct __sk_buff *skb, struct flow *f, __u16 *rev_nat)
{
	struct lb4_service *svc;

	if (f->protocol != IPPROTO_TCP && f->protocol != IPPROTO_UDP)
		return 0;
	svc = lb4_lookup_service(f->daddr, f->dport, f->protocol);
	if (!svc)
		return 0;
	*rev_nat = svc->rev_nat_index;
	return lb4_translate_to(skb, f, svc);
}

/* A reply of a translated flow: its source becomes the VIP again. */
static __always_inline int lb4_reverse_nat(struct __sk_buff *skb, struct flow *f, __u16 rev_nat)
{
	struct lb4_reverse_nat *vip = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);

	if (!vip)
		return 0;	/* the service is gone; nothing to undo */
	return lb4_rewrite(skb, f, 0, vip->address, vip->port);
}


/* ICMP errors about a client's service flow (both families): the packet an
 * error quotes went to the backend, so its destination becomes the
 * frontend again, as the client's socket knows it. Without this an error
 * about a service flow finds no socket: a "fragmentation needed" or packet
 * too big is lost and path MTU discovery through a service fails (Cilium
 * reverse-NATs the quotes too). The error's checksum, which covers the
 * quote, follows each store; the quote's own L4 checksum, which nobody
 * checks, stays as it was. */

/* Replaces `size` bytes (a multiple of 4) of the quote at `off`, `old`
 * with `new`, and fixes the error's checksum at `csum_off`. */
static __always_inline int icmp_quote_store(struct __sk_buff *skb, __u32 csum_off, __u32 off,
					    void *old, void *new, __u32 size)
{
	__s64 sum = bpf_csum_diff(old, size, new, size, 0);

	if (sum < 0 || bpf_skb_store_bytes(skb, off, new, size, 0) < 0 ||
	    bpf_l4_csum_replace(skb, csum_off, 0, sum, 0) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

/* The quoted TCP or UDP header at `l4_off` gets destination port `port`. */
static __always_inline int icmp_quote_set_dport(struct __sk_buff *skb, __u32 csum_off,
						__u32 l4_off, __be16 port)
{
	__be16 ports[2], new_ports[2];	/* source, destination */

	if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
		return DROP_INVALID;
	new_ports[0] = ports[0];
	new_ports[1] = port;
	return icmp_quote_store(skb, csum_off, l4_off, ports, new_ports, sizeof(ports));
}

/* A 16-bit header checksum after one 32-bit word of the header changed
 * (RFC 1624: HC' = ~(~HC + ~m + m')). */
static __always_inline __sum16 csum16_replace4(__sum16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from + (__u16)(~from >> 16) + (__u16)to + (__u16)(to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/* An ICMP error delivered to the endpoint that is related to its egress
 * entry with `rev_nat` (ct4_icmp_error_flow): the quoted IPv4 header's
 * destination and its header checksum, then the quoted port. 0 or a drop
 * reason. */
static __always_inline int lb4_icmp_error_reverse_nat(struct __sk_buff *skb,
						      const struct flow *f, __u16 rev_nat)
{
	struct lb4_reverse_nat *vip = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat);
	__u32 quote = (__u32)f->l4_off + 8;
	__u32 csum_off = (__u32)f->l4_off + offsetof(struct icmphdr, checksum);
	struct iphdr in, out;
	int ret;

	if (!vip)
		return 0;	/* the service is gone; nothing to undo */
	if (bpf_skb_load_bytes(skb, quote, &in, sizeof(in)) < 0 || in.ihl < 5)
		return DROP_INVALID;
	out = in;
	out.daddr = vip->address;
	out.check = csum16_replace4(in.check, in.daddr, out.daddr);
	ret = icmp_quote_store(skb, csum_off, quote, &in, &out, sizeof(in));
	if (ret || (in.protocol != IPPROTO_TCP && in.protocol != IPPROTO_UDP))
		return ret;
	return icmp_quote_set_dport(skb, csum_off, quote + in.ihl * 4, vip->port);
}

#endif /* __LIB_LB_H_ */
