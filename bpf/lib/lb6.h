/* Service load balancing for IPv6: lib/lb.h's design over the cilium_lb6_*
 * maps. Slot 0 of a frontend is the service, slots 1..count its backends;
 * a client's flow remembers its backend in a CT_SERVICE entry of
 * cilium_ct6_global; replies are translated back to the frontend. IPv6 has
 * no header checksum: the L4 checksum covers the addresses through the
 * pseudo header. */
#ifndef __LIB_LB6_H_
#define __LIB_LB6_H_

#include "lb.h"
#include "ipv6.h"
#include "conntrack6.h"

static __always_inline struct lb6_service *lb6_lookup_service(const union v6addr *addr,
							      __be16 port, __u8 proto)
{
	struct lb6_key key = { .address = *addr, .dport = port, .proto = proto };

	return bpf_map_lookup_elem(&cilium_lb6_services_v2, &key);
}

static __always_inline struct lb6_backend *lb6_select_backend(const union v6addr *addr,
							      __be16 port, __u8 proto,
							      const struct lb6_service *svc,
							      __u32 *backend_id)
{
	struct lb6_key key = { .address = *addr, .dport = port, .proto = proto };
	struct lb6_service *slot;

	if (!svc->count)
		return NULL;
	key.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&cilium_lb6_services_v2, &key);
	if (!slot)
		return NULL;
	*backend_id = slot->backend_id;
	return bpf_map_lookup_elem(&cilium_lb6_backends_v3, backend_id);
}

/* Rewrites the destination (dst) or source address and port of a TCP or
 * UDP packet and its checksum; the flow follows. A later fragment has no
 * L4 header: only its address changes (its first fragment's checksum
 * covers the datagram, and was fixed there). */
static __always_inline int lb6_rewrite(struct __sk_buff *skb, struct flow6 *f, int dst,
				       const union v6addr *to_addr, __be16 new_port)
{
	union v6addr old_addr = dst ? f->daddr : f->saddr;
	union v6addr new_addr = *to_addr;
	__be16 old_port = dst ? f->l4.dport : f->l4.sport;
	int addr_off = ETH_HLEN + (dst ? offsetof(struct ipv6hdr, daddr) :
					 offsetof(struct ipv6hdr, saddr));
	int csum_off, port_off;
	__u64 mangled = 0;
	__s64 sum;

	if (f->l4.protocol == NEXTHDR_TCP) {
		csum_off = f->l4_off + offsetof(struct tcphdr, check);
		port_off = f->l4_off + (dst ? offsetof(struct tcphdr, dest) :
					      offsetof(struct tcphdr, source));
	} else if (f->l4.protocol == NEXTHDR_UDP) {
		csum_off = f->l4_off + offsetof(struct udphdr, check);
		port_off = f->l4_off + (dst ? offsetof(struct udphdr, dest) :
					      offsetof(struct udphdr, source));
		mangled = BPF_F_MARK_MANGLED_0;
	} else {
		return DROP_NO_SERVICE;
	}

	if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
		return DROP_WRITE_ERROR;
	if (f->l4_off) {
		sum = bpf_csum_diff(old_addr.p, sizeof(old_addr), new_addr.p, sizeof(new_addr), 0);
		if (sum < 0 ||
		    bpf_l4_csum_replace(skb, csum_off, 0, sum, BPF_F_PSEUDO_HDR | mangled) < 0)
			return DROP_WRITE_ERROR;
		if (old_port != new_port &&
		    (bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					 mangled | sizeof(new_port)) < 0 ||
		     bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0) < 0))
			return DROP_WRITE_ERROR;
	}

	if (dst) {
		f->daddr = new_addr;
		f->l4.dport = new_port;
	} else {
		f->saddr = new_addr;
		f->l4.sport = new_port;
	}
	return 0;
}

/* A client's packet to service `svc`: recalls or picks the backend and
 * rewrites the destination to it. 0 or a drop reason. */
static __always_inline int lb6_translate_to(struct __sk_buff *skb, struct flow6 *f,
					    const struct lb6_service *svc)
{
	struct lb6_backend *backend = NULL;
	struct ct_entry *e;
	struct ct6_key key;
	__u32 backend_id = 0;

	ct6_key_of(f, CT_DIR_SERVICE, 0, &key);
	e = bpf_map_lookup_elem(&cilium_ct6_global, &key);
	if (e && e->expires > ct_now()) {
		backend_id = e->backend_id;
		backend = bpf_map_lookup_elem(&cilium_lb6_backends_v3, &backend_id);
		if (backend)
			ct_account(e, &f->l4, 0);
	}
	if (!backend) {
		/* New flow, or its backend was removed: choose again. */
		struct ct_entry fresh = { .rev_nat_index = svc->rev_nat_index };

		backend = lb6_select_backend(&f->daddr, f->l4.dport, f->l4.protocol, svc,
					     &backend_id);
		if (!backend)
			return DROP_NO_SERVICE;
		fresh.backend_id = backend_id;
		ct_account(&fresh, &f->l4, 0);
		bpf_map_update_elem(&cilium_ct6_global, &key, &fresh, BPF_ANY);
	}
	/* The later fragments arrive addressed to the frontend: they find
	 * the first one's L4 view under that tuple. */
	frag6_register(f);
	return lb6_rewrite(skb, f, 1, &backend->address, backend->port);
}

/* A client's packet to an IPv6 frontend: lb4_translate for IPv6. 0 also
 * when the destination is no service; then *rev_nat stays 0. */
static __always_inline int lb6_translate(struct __sk_buff *skb, struct flow6 *f, __u16 *rev_nat)
{
	struct lb6_service *svc;

	if (f->l4.protocol != NEXTHDR_TCP && f->l4.protocol != NEXTHDR_UDP)
		return 0;
	svc = lb6_lookup_service(&f->daddr, f->l4.dport, f->l4.protocol);
	if (!svc)
		return 0;
	*rev_nat = svc->rev_nat_index;
	return lb6_translate_to(skb, f, svc);
}

/* A reply of a translated flow: its source becomes the frontend again. */
static __always_inline int lb6_reverse_nat(struct __sk_buff *skb, struct flow6 *f, __u16 rev_nat)
{
	struct lb6_reverse_nat *vip = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &rev_nat);

	if (!vip)
		return 0;	/* the service is gone; nothing to undo */
	return lb6_rewrite(skb, f, 0, &vip->address, vip->port);
}

/* lb4_icmp_error_reverse_nat for ICMPv6 (related through
 * ct6_icmp_error_flow, which only recognises a quote without extension
 * headers): the quoted destination address, then its port. IPv6 has no
 * header checksum. 0 or a drop reason. */
static __always_inline int lb6_icmp_error_reverse_nat(struct __sk_buff *skb,
						      const struct flow6 *f, __u16 rev_nat)
{
	struct lb6_reverse_nat *vip = bpf_map_lookup_elem(&cilium_lb6_reverse_nat, &rev_nat);
	__u32 quote = (__u32)f->l4_off + 8;
	__u32 addr_off = quote + offsetof(struct ipv6hdr, daddr);
	__u32 csum_off = (__u32)f->l4_off + 2;
	union v6addr old_addr, new_addr;
	int ret;

	if (!vip)
		return 0;	/* the service is gone; nothing to undo */
	if (bpf_skb_load_bytes(skb, addr_off, &old_addr, sizeof(old_addr)) < 0)
		return DROP_INVALID;
	new_addr = vip->address;
	ret = icmp_quote_store(skb, csum_off, addr_off, &old_addr, &new_addr, sizeof(new_addr));
	if (ret)
		return ret;
	return icmp_quote_set_dport(skb, csum_off, quote + sizeof(struct ipv6hdr), vip->port);
}

#endif /* __LIB_LB6_H_ */
