/* Endpoint datapath, attached at tc on the host side of each endpoint's veth.
 * One instance is loaded per endpoint: its constants and its policy map
 * (pinned as cilium_policy_<LXC_ID>) belong to that endpoint.
 *
 * cil_from_container (tc ingress): packets the container sends. Enforces
 * the endpoint's egress policy, then delivers to a local endpoint through
 * that endpoint's cil_lxc_policy, encapsulates towards another node, or
 * hands the packet to the host stack.
 * cil_to_container (tc egress): packets about to enter the container from
 * the host stack (or a sender that found no cil_lxc_policy). Enforces the
 * endpoint's ingress policy.
 * cil_lxc_policy (tail call, cilium_call_policy): the same enforcement for
 * packets from local endpoints and the overlay, delivered straight into
 * the container with bpf_redirect_peer.
 *
 * Connections an allow entry with a proxy port covers go to the L7 proxy
 * instead (lib/proxy.h): egress ones straight from cil_from_container,
 * ingress ones turned around from cil_to_container. The proxy's own
 * upstream traffic carries a mark: ingress was enforced by the proxy
 * already; egress carries the client's identity. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/ipv4.h"
#include "lib/ipcache.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/events.h"
#include "lib/metrics.h"
#include "lib/encap.h"
#include "lib/lb.h"
#include "lib/proxy.h"
#include "lib/nodeport.h"
#include "lib/ipv6.h"
#include "lib/conntrack6.h"
#include "lib/icmp6.h"
#include "lib/lb6.h"
#include "lib/nodeport6.h"

/* Set by the agent at load time. */
volatile const __u32 LXC_ID = 0;
/* The node's VXLAN device; 0 when there is no overlay. */
volatile const __u32 ENCAP_IFINDEX = 0;
/* The endpoint's IPv6 gateway (the node's router address), whose neighbour
 * solicitations this program answers with HOST_MAC, the MAC of the
 * endpoint's host-side veth. All zero: IPv6 has no gateway here. */
volatile const __u64 ROUTER_IP6[2] = {};
volatile const __u8 HOST_MAC[ETH_ALEN] = {};

/* Drops and reports the packet as seen at `ifindex`: the endpoint's
 * host-side veth, also where the overlay tail-called its policy. */
static __always_inline int drop_at(struct __sk_buff *skb, __u32 ifindex, __u8 reason,
				   const struct flow *f, __u32 src_id, __u32 dst_id, __u8 dir)
{
	update_metrics(skb->len, reason, dir);
	send_drop(reason, LXC_ID, ifindex, f, src_id, dst_id, dir);
	return TC_ACT_SHOT;
}

static __always_inline int drop(struct __sk_buff *skb, __u8 reason, const struct flow *f,
				__u32 src_id, __u32 dst_id, __u8 dir)
{
	return drop_at(skb, skb->ifindex, reason, f, src_id, dst_id, dir);
}

static __always_inline int drop_unparsed(struct __sk_buff *skb, __u32 ifindex, __u8 reason,
					 __u8 dir)
{
	struct flow f = { .length = skb->len };

	return drop_at(skb, ifindex, reason, &f, 0, 0, dir);
}

/* Runs policy for a new flow and reports the verdict; 0 if allowed, with
 * the L7 proxy port to redirect to (0 = none) in *proxy_port. */
static __always_inline int enforce(__u32 peer_id, const struct flow *f, __u32 src_id,
				   __u32 dst_id, __u8 dir, __u32 ifindex, __u16 *proxy_port)
{
	struct policy_verdict v = policy_can_access(peer_id, f, dir);

	send_policy_verdict(&v, LXC_ID, ifindex, f, src_id, dst_id, dir);
	if (v.allow) {
		*proxy_port = bpf_ntohs(v.proxy_port);
		return 0;
	}
	return v.denied_by_rule ? DROP_POLICY_DENY : DROP_POLICY;
}

/* drop_at, drop and enforce for IPv6: the same, reporting the IPv6
 * addresses (struct event6). */
static __always_inline int drop6_at(struct __sk_buff *skb, __u32 ifindex, __u8 reason,
				    const struct flow6 *f, __u32 src_id, __u32 dst_id, __u8 dir)
{
	update_metrics(skb->len, reason, dir);
	send_drop6(reason, LXC_ID, ifindex, f, src_id, dst_id, dir);
	return TC_ACT_SHOT;
}

static __always_inline int drop6(struct __sk_buff *skb, __u8 reason, const struct flow6 *f,
				 __u32 src_id, __u32 dst_id, __u8 dir)
{
	return drop6_at(skb, skb->ifindex, reason, f, src_id, dst_id, dir);
}

static __always_inline int enforce6(__u32 peer_id, const struct flow6 *f, __u32 src_id,
				    __u32 dst_id, __u8 dir, __u32 ifindex, __u16 *proxy_port)
{
	struct policy_verdict v = policy_can_access(peer_id, &f->l4, dir);

	send_policy_verdict6(&v, LXC_ID, ifindex, f, src_id, dst_id, dir);
	if (v.allow) {
		*proxy_port = bpf_ntohs(v.proxy_port);
		return 0;
	}
	return v.denied_by_rule ? DROP_POLICY_DENY : DROP_POLICY;
}

/* IPv6 from the container: the IPv4 path's order (anti-spoofing,
 * services, conntrack, egress policy, L7 proxy, delivery). Neighbour
 * discovery comes first and never meets policy; the gateway's is answered
 * here. */
static __always_inline int from_container6(struct __sk_buff *skb)
{
	struct endpoint_info *self, *dst_ep;
	struct remote_endpoint_info *remote;
	struct flow6 f;
	struct ct_state state = {};
	__u32 src_id, dst_id;
	__u16 rev_nat = 0;
	int ct, ret;

	ret = parse_ipv6(skb, &f);
	if (ret)
		return drop_unparsed(skb, skb->ifindex, ret, DIR_EGRESS);

	/* Turned around by this endpoint's to_container6, as for IPv4. */
	if (proxy_port_from_mark(skb)) {
		ret = proxy_assign6(skb, &f, proxy_port_from_mark(skb));
		if (ret)
			return drop6(skb, ret, &f, 0, 0, DIR_INGRESS);
		return TC_ACT_OK;
	}

	if (icmp6_is_nd(&f)) {
		union v6addr router = { .d1 = ROUTER_IP6[0], .d2 = ROUTER_IP6[1] };
		__u8 mac[ETH_ALEN];
		int i;

		/* Advertisements go on to the stack, as in Cilium. */
		if (f.l4.icmp_type == ICMP6_NA)
			return TC_ACT_OK;
		for (i = 0; i < ETH_ALEN; i++)
			mac[i] = HOST_MAC[i];
		ret = nd_answer_router(skb, &f, &router, mac);
		if (ret < 0)
			return drop_unparsed(skb, skb->ifindex, -ret, DIR_EGRESS);
		return ret;
	}

	self = lookup_local_endpoint6(&f.saddr);
	if (!self || self->lxc_id != LXC_ID)
		return drop6(skb, DROP_INVALID_SIP, &f, 0, 0, DIR_EGRESS);
	src_id = self->sec_id;

	/* Services first: policy and delivery see the chosen backend. */
	ret = lb6_translate(skb, &f, &rev_nat);
	if (ret)
		return drop6(skb, ret, &f, src_id, 0, DIR_EGRESS);

	remote = ipcache6_lookup(&f.daddr);
	dst_ep = remote && remote->tunnel_endpoint ? NULL : lookup_local_endpoint6(&f.daddr);
	if (dst_ep)
		dst_id = dst_ep->sec_id;
	else
		dst_id = remote ? remote->sec_identity : WORLD_IPV6_ID;

	ct = ct6_lookup(&f, CT_DIR_EGRESS, &state);
	if (ct == CT_NEW && ct6_icmp_error_related(skb, &f, CT_DIR_EGRESS)) {
		ct = CT_RELATED;
	} else if (ct == CT_NEW) {
		ret = enforce6(dst_id, &f, src_id, dst_id, DIR_EGRESS, skb->ifindex,
			      &state.proxy_port);
		if (ret)
			return drop6(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
		state.rev_nat = rev_nat;
		ct6_create(&f, CT_DIR_EGRESS, src_id, &state);
	} else if (ct == CT_REPLY && state.rev_nat) {
		/* A backend answering a client that reached it through an
		 * IPv6 NodePort (bpf_host handed the flow over translated). */
		ret = lb6_reverse_nat(skb, &f, state.rev_nat);
		if (ret)
			return drop6(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
	}
	frag6_register(&f);

	update_metrics(skb->len, REASON_FORWARDED, DIR_EGRESS);
	if (state.proxy_port) {
		ret = proxy_assign6(skb, &f, state.proxy_port);
		if (ret)
			return drop6(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
		send_trace6(TRACE_TO_PROXY, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id,
			    DIR_EGRESS);
		return TC_ACT_OK;
	}
	if (dst_ep) {
		__u32 ifindex = dst_ep->ifindex;

		ret = ipv6_route_to(skb, dst_ep->mac, dst_ep->node_mac);
		if (ret)
			return drop_unparsed(skb, skb->ifindex, ret, DIR_EGRESS);
		tail_call_endpoint_policy(skb, dst_ep, src_id, 0);
		return bpf_redirect(ifindex, 0);
	}
	if (remote && remote->tunnel_endpoint && ENCAP_IFINDEX) {
		send_trace6(TRACE_TO_OVERLAY, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id,
			    DIR_EGRESS);
		ret = encap_and_redirect(skb, ENCAP_IFINDEX, remote->tunnel_endpoint, src_id);
		if (ret < 0)
			return drop6(skb, DROP_WRITE_ERROR, &f, src_id, dst_id, DIR_EGRESS);
		return ret;
	}
	send_trace6(TRACE_TO_STACK, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id, DIR_EGRESS);
	if (ct == CT_REPLY && state.rev_nat) {
		/* From the node's own address now: routed here, as for IPv4. */
		ret = redirect_by_fib6(skb, &f);
		if (ret < 0)
			return drop6(skb, -ret, &f, src_id, dst_id, DIR_EGRESS);
		return ret;
	}
	return TC_ACT_OK;
}

/* IPv6 into the container: to_container's enforcement. Neighbour
 * discovery passes whatever the policy. `nodeport_rev_nat`: as for IPv4,
 * the service of a NodePort flow bpf_host handed over translated. */
static __always_inline int to_container6(struct __sk_buff *skb, __u32 ifindex, int peer,
					 __u16 nodeport_rev_nat)
{
	struct endpoint_info *self;
	struct flow6 f;
	struct ct_state state = {};
	__u32 src_id, dst_id, magic;
	__u16 quoted_rev_nat = 0;
	int ct, ret;

	ret = parse_ipv6(skb, &f);
	if (ret)
		return drop_unparsed(skb, ifindex, ret, DIR_INGRESS);
	if (icmp6_is_nd(&f))
		return peer ? bpf_redirect_peer(ifindex, 0) : TC_ACT_OK;

	src_id = take_identity_mark(skb, &magic);
	ct = ct6_lookup(&f, CT_DIR_INGRESS, &state);
	self = NULL;
	dst_id = 0;
	if (ct == CT_NEW || state.proxy_port || (trace_wanted(ct, &f.l4) && events_wanted())) {
		if (!src_id)
			src_id = identity_of6(&f.saddr);
		self = lookup_local_endpoint6(&f.daddr);
		dst_id = self ? self->sec_id : 0;
	}
	if (ct == CT_NEW && ct6_icmp_error_flow(skb, &f, CT_DIR_INGRESS, &quoted_rev_nat)) {
		ct = CT_RELATED;
		/* About a packet this endpoint sent to a service. */
		ret = quoted_rev_nat ? lb6_icmp_error_reverse_nat(skb, &f, quoted_rev_nat) : 0;
		if (ret)
			return drop6_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
	} else if (ct == CT_NEW) {
		if (magic != MARK_MAGIC_PROXY_INGRESS) {
			ret = enforce6(src_id, &f, src_id, dst_id, DIR_INGRESS, ifindex,
				      &state.proxy_port);
			if (ret)
				return drop6_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
		}
		state.rev_nat = nodeport_rev_nat;
		ct6_create(&f, CT_DIR_INGRESS, src_id, &state);
	} else if (ct == CT_REPLY && state.rev_nat) {
		/* A backend answering a client that dialled a service. */
		ret = lb6_reverse_nat(skb, &f, state.rev_nat);
		if (ret)
			return drop6_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
	}
	frag6_register(&f);

	update_metrics(skb->len, REASON_FORWARDED, DIR_INGRESS);
	if (state.proxy_port) {
		/* As for IPv4: a local source's later packets go to the proxy
		 * from its own cil_from_container. */
		if (ct == CT_NEW && lookup_local_endpoint6(&f.saddr))
			ct6_set_proxy_port(&f, CT_DIR_EGRESS, state.proxy_port);
		if (!self)
			return drop6_at(skb, ifindex, DROP_PROXY_LOOKUP_FAILED, &f, src_id, dst_id,
					DIR_INGRESS);
		send_trace6(TRACE_TO_PROXY, ct, LXC_ID, ifindex, &f, src_id, dst_id,
			    DIR_INGRESS);
		ret = proxy_hairpin(skb, ifindex, self->node_mac, state.proxy_port);
		if (ret < 0)
			return drop6_at(skb, ifindex, -ret, &f, src_id, dst_id, DIR_INGRESS);
		return ret;
	}
	send_trace6(TRACE_TO_LXC, ct, LXC_ID, ifindex, &f, src_id, dst_id, DIR_INGRESS);
	return peer ? bpf_redirect_peer(ifindex, 0) : TC_ACT_OK;
}

SEC("classifier")
int cil_from_container(struct __sk_buff *skb)
{
	struct endpoint_info *self, *dst_ep;
	struct remote_endpoint_info *remote;
	struct flow f;
	struct ct_state state = {};
	__u32 src_id, dst_id;
	__u16 rev_nat = 0, proxy_port = 0;
	int ct, ret;

	if (skb->protocol != bpf_htons(ETH_P_IP)) {
		if (skb->protocol == bpf_htons(ETH_P_ARP))
			return TC_ACT_OK;
		if (skb->protocol == bpf_htons(ETH_P_IPV6))
			return from_container6(skb);
		return drop_unparsed(skb, skb->ifindex, DROP_UNKNOWN_L3, DIR_EGRESS);
	}

	ret = parse_ipv4(skb, &f);
	if (ret)
		return drop_unparsed(skb, skb->ifindex, ret, DIR_EGRESS);

	/* Turned around by this endpoint's cil_to_container (a mark no
	 * container can set): ingress policy chose the proxy. */
	proxy_port = proxy_port_from_mark(skb);
	if (proxy_port) {
		ret = proxy_assign(skb, &f, proxy_port);
		if (ret)
			return drop(skb, ret, &f, 0, 0, DIR_INGRESS);
		return TC_ACT_OK;
	}

	/* The source address must be this endpoint's: no spoofing. */
	self = lookup_local_endpoint(f.saddr);
	if (!self || self->lxc_id != LXC_ID)
		return drop(skb, DROP_INVALID_SIP, &f, 0, 0, DIR_EGRESS);
	src_id = self->sec_id;

	/* Services first: policy and delivery see the chosen backend. */
	ret = lb4_translate(skb, &f, &rev_nat);
	if (ret)
		return drop(skb, ret, &f, src_id, 0, DIR_EGRESS);

	/* The ipcache first: a remote pod's address needs no endpoint lookup. */
	remote = ipcache_lookup(f.daddr);
	dst_ep = remote && remote->tunnel_endpoint ? NULL : lookup_local_endpoint(f.daddr);
	if (dst_ep)
		dst_id = dst_ep->sec_id;
	else
		dst_id = remote ? remote->sec_identity : WORLD_ID;

	ct = ct_lookup(&f, CT_DIR_EGRESS, &state);
	if (ct == CT_NEW && ct4_icmp_error_related(skb, &f, CT_DIR_EGRESS)) {
		ct = CT_RELATED;
	} else if (ct == CT_NEW) {
		ret = enforce(dst_id, &f, src_id, dst_id, DIR_EGRESS, skb->ifindex,
			      &state.proxy_port);
		if (ret)
			return drop(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
		state.rev_nat = rev_nat;
		ct_create(&f, CT_DIR_EGRESS, src_id, &state);
	} else if (ct == CT_REPLY && state.rev_nat) {
		/* A backend answering a client that reached it through a
		 * NodePort (bpf_host handed the flow over translated). */
		ret = lb4_reverse_nat(skb, &f, state.rev_nat);
		if (ret)
			return drop(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
	}

	update_metrics(skb->len, REASON_FORWARDED, DIR_EGRESS);
	if (state.proxy_port) {
		ret = proxy_assign(skb, &f, state.proxy_port);
		if (ret)
			return drop(skb, ret, &f, src_id, dst_id, DIR_EGRESS);
		send_trace(TRACE_TO_PROXY, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id,
			   DIR_EGRESS);
		return TC_ACT_OK;
	}
	if (dst_ep) {
		/* The destination's policy program enforces its ingress policy,
		 * knowing our identity from the mark, and hands the packet
		 * straight into its namespace. Without one (being set up), its
		 * to-container program does on the way out of its veth. */
		__u32 ifindex = dst_ep->ifindex;

		ret = ipv4_route_to(skb, dst_ep->mac, dst_ep->node_mac);
		if (ret)
			return drop_unparsed(skb, skb->ifindex, ret, DIR_EGRESS);
		tail_call_endpoint_policy(skb, dst_ep, src_id, 0);
		return bpf_redirect(ifindex, 0);
	}
	if (remote && remote->tunnel_endpoint && ENCAP_IFINDEX) {
		/* The receiving node enforces the destination's ingress
		 * policy, knowing our identity from the VNI. */
		send_trace(TRACE_TO_OVERLAY, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id,
			   DIR_EGRESS);
		ret = encap_and_redirect(skb, ENCAP_IFINDEX, remote->tunnel_endpoint, src_id);
		if (ret < 0)
			return drop(skb, DROP_WRITE_ERROR, &f, src_id, dst_id, DIR_EGRESS);
		return ret;
	}
	send_trace(TRACE_TO_STACK, ct, LXC_ID, skb->ifindex, &f, src_id, dst_id, DIR_EGRESS);
	if (ct == CT_REPLY && state.rev_nat) {
		/* From the node's own address now, which the stack would
		 * refuse as a martian source: routed here instead. */
		ret = redirect_by_fib(skb, &f);
		if (ret < 0)
			return drop(skb, -ret, &f, src_id, dst_id, DIR_EGRESS);
		return ret;
	}
	return TC_ACT_OK;
}

/* Enforces the endpoint's ingress policy on a packet about to enter the
 * container. `ifindex` is the endpoint's host-side veth. At that veth's tc
 * egress an allowed packet just goes on; tail-called by the overlay
 * (`peer`), it is handed straight to the container's side of the veth. */
static __always_inline int to_container(struct __sk_buff *skb, __u32 ifindex, int peer,
					__u16 nodeport_rev_nat)
{
	struct endpoint_info *self;
	struct flow f;
	struct ct_state state = {};
	__u32 src_id, dst_id, magic;
	__u16 quoted_rev_nat = 0;
	int ct, ret;

	if (skb->protocol != bpf_htons(ETH_P_IP)) {
		if (skb->protocol == bpf_htons(ETH_P_ARP))
			return TC_ACT_OK;
		if (skb->protocol == bpf_htons(ETH_P_IPV6))
			return to_container6(skb, ifindex, peer, nodeport_rev_nat);
		return drop_unparsed(skb, ifindex, DROP_UNKNOWN_L3, DIR_INGRESS);
	}

	ret = parse_ipv4(skb, &f);
	if (ret)
		return drop_unparsed(skb, ifindex, ret, DIR_INGRESS);

	/* A packet from another node carries its source identity from the
	 * VNI, one from the proxy its client's; anything else is identified
	 * by its address. Identities only matter for policy, events and the
	 * proxy: data packets of established flows skip both lookups. */
	src_id = take_identity_mark(skb, &magic);
	ct = ct_lookup(&f, CT_DIR_INGRESS, &state);
	self = NULL;
	dst_id = 0;
	if (ct == CT_NEW || state.proxy_port || state.rev_nat ||
	    (trace_wanted(ct, &f) && events_wanted())) {
		if (!src_id)
			src_id = identity_of(f.saddr);
		self = lookup_local_endpoint(f.daddr);
		dst_id = self ? self->sec_id : 0;
	}
	if (ct == CT_NEW && ct4_icmp_error_flow(skb, &f, CT_DIR_INGRESS, &quoted_rev_nat)) {
		ct = CT_RELATED;
		/* About a packet this endpoint sent to a service. */
		ret = quoted_rev_nat ? lb4_icmp_error_reverse_nat(skb, &f, quoted_rev_nat) : 0;
		if (ret)
			return drop_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
	} else if (ct == CT_NEW) {
		/* The proxy's upstream connection on ingress passed the L7
		 * policy, which covers the L3/L4 one. */
		if (magic != MARK_MAGIC_PROXY_INGRESS) {
			ret = enforce(src_id, &f, src_id, dst_id, DIR_INGRESS, ifindex,
				      &state.proxy_port);
			if (ret)
				return drop_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
		}
		state.rev_nat = nodeport_rev_nat;
		ct_create(&f, CT_DIR_INGRESS, src_id, &state);
	} else if (ct == CT_REPLY && state.rev_nat) {
		/* A backend answering a client that dialled a service. */
		ret = lb4_reverse_nat(skb, &f, state.rev_nat);
		if (ret)
			return drop_at(skb, ifindex, ret, &f, src_id, dst_id, DIR_INGRESS);
	}

	update_metrics(skb->len, REASON_FORWARDED, DIR_INGRESS);
	if (state.proxy_port) {
		/* A local source's later packets go to the proxy straight from
		 * its own cil_from_container, without this turn-around. */
		if (ct == CT_NEW && lookup_local_endpoint(f.saddr))
			ct_set_proxy_port(&f, CT_DIR_EGRESS, state.proxy_port);
		if (!self)
			return drop_at(skb, ifindex, DROP_PROXY_LOOKUP_FAILED, &f, src_id, dst_id,
				    DIR_INGRESS);
		send_trace(TRACE_TO_PROXY, ct, LXC_ID, ifindex, &f, src_id, dst_id,
			   DIR_INGRESS);
		ret = proxy_hairpin(skb, ifindex, self->node_mac, state.proxy_port);
		if (ret < 0)
			return drop_at(skb, ifindex, -ret, &f, src_id, dst_id, DIR_INGRESS);
		return ret;
	}
	send_trace(TRACE_TO_LXC, ct, LXC_ID, ifindex, &f, src_id, dst_id, DIR_INGRESS);
	return peer ? bpf_redirect_peer(ifindex, 0) : TC_ACT_OK;
}

SEC("classifier")
int cil_to_container(struct __sk_buff *skb)
{
	return to_container(skb, skb->ifindex, 0, 0);
}

/* The entry in cilium_call_policy: the overlay, bpf_host and local
 * senders' cil_from_container tail-call it with the endpoint's host-side
 * ifindex in cb[0] and, from bpf_host, the reverse-NAT index of a NodePort
 * flow in cb[1] (else 0). All run at a tc ingress, where bpf_redirect_peer
 * may skip the veth's own hop. */
SEC("classifier")
int cil_lxc_policy(struct __sk_buff *skb)
{
	return to_container(skb, skb->cb[0], 1, skb->cb[1]);
}

char _license[] SEC("license") = "Dual BSD/GPL";
