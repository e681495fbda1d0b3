/* Policy lookup in the running endpoint's own policy map. */
#ifndef __LIB_POLICY_H_
#define __LIB_POLICY_H_

#include "maps.h"
#include "ipv4.h"

struct policy_verdict {
	int allow;
	int denied_by_rule;	/* an explicit deny entry matched */
	__u8 match_type;
	__u16 proxy_port;
};

/* ICMPv6's protocol number (linux/in6.h is not for BPF C). */
#define IPPROTO_ICMPV6_NR 58

/* The policy "port" of a flow: the destination port, or the ICMP type
 * (ICMPv6's for IPv6, whose `icmps` rules are keyed by protocol 58). */
static __always_inline __be16 policy_port(const struct flow *f)
{
	if (f->protocol == IPPROTO_ICMP || f->protocol == IPPROTO_ICMPV6_NR)
		return bpf_htons(f->icmp_type);
	return f->dport;
}

static __always_inline struct policy_entry *policy_lookup(__u32 identity, const struct flow *f,
							  __u8 dir)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.sec_label = identity,
		.egress = dir,
		.protocol = f->protocol,
		.dport = policy_port(f),
	};

	return bpf_map_lookup_elem(&cilium_policy, &key);
}

static __always_inline void policy_account(struct policy_entry *e, const struct flow *f)
{
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, f->length);
}

/* Looks up the peer's own identity and the wildcard identity, each by
 * longest prefix. Deny from either wins over any allow (the agent removes
 * allows that a same-identity deny covers, so a longest-prefix match never
 * hides a deny); otherwise the peer's own entry is preferred. */
static __always_inline struct policy_verdict policy_can_access(__u32 identity,
							       const struct flow *f,
							       __u8 dir)
{
	struct policy_verdict v = { .match_type = MATCH_NONE };
	struct policy_entry *peer = policy_lookup(identity, f, dir);
	struct policy_entry *any = policy_lookup(0, f, dir);
	struct policy_entry *e;
	int l4;

	if (peer && peer->deny)
		e = peer;
	else if (any && any->deny)
		e = any;
	else
		e = peer ? peer : any;
	if (!e)
		return v;

	policy_account(e, f);
	l4 = e->lpm_prefix_length > POLICY_PREFIX_L3;
	if (e == peer)
		v.match_type = l4 ? MATCH_L3_L4 : MATCH_L3_ONLY;
	else
		v.match_type = l4 ? MATCH_L4_ONLY : MATCH_ALL;
	if (e->deny) {
		v.denied_by_rule = 1;
		return v;
	}
	v.allow = 1;
	v.proxy_port = e->proxy_port;
	return v;
}

#endif /* __LIB_POLICY_H_ */
