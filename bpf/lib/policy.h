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

/* The keys that can cover a packet, most specific first. A port is only
 * meaningful with its protocol, so there is no (identity, any proto, port). */
#define POLICY_CANDIDATES 6

static __always_inline void policy_candidate(int i, __u32 identity, const struct flow *f,
					     __u8 dir, struct policy_key *key, __u8 *match)
{
	int any_id = i >= 3;
	int level = any_id ? i - 3 : i;

	key->sec_label = any_id ? 0 : identity;
	key->egress = dir;
	key->protocol = level == 2 ? 0 : f->protocol;
	key->dport = level == 0 ? f->dport : 0;
	if (!any_id)
		*match = level == 2 ? MATCH_L3_ONLY : MATCH_L3_L4;
	else
		*match = level == 2 ? MATCH_ALL : MATCH_L4_ONLY;
}

/* Deny wins over any allow, whatever its specificity; among allows the most
 * specific entry is the one credited and whose proxy port is used. */
static __always_inline struct policy_verdict policy_can_access(__u32 identity,
							       const struct flow *f,
							       __u8 dir)
{
	struct policy_verdict v = { .match_type = MATCH_NONE };
	struct policy_entry *allowed = NULL;
	struct policy_key key;
	__u8 match = 0;

#pragma unroll
	for (int i = 0; i < POLICY_CANDIDATES; i++) {
		struct policy_entry *e;

		/* Port-specific keys only exist for protocols with ports. */
		if ((i == 0 || i == 3) && f->dport == 0)
			continue;
		policy_candidate(i, identity, f, dir, &key, &match);
		e = bpf_map_lookup_elem(&cilium_policy, &key);
		if (!e)
			continue;
		if (e->deny) {
			__sync_fetch_and_add(&e->packets, 1);
			__sync_fetch_and_add(&e->bytes, f->length);
			v.allow = 0;
			v.denied_by_rule = 1;
			v.match_type = match;
			v.proxy_port = 0;
			return v;
		}
		if (!allowed) {
			allowed = e;
			v.allow = 1;
			v.match_type = match;
			v.proxy_port = e->proxy_port;
		}
	}
	if (allowed) {
		__sync_fetch_and_add(&allowed->packets, 1);
		__sync_fetch_and_add(&allowed->bytes, f->length);
	}
	return v;
}

#endif /* __LIB_POLICY_H_ */
