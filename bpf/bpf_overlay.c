/* Overlay datapath on the node's collect-metadata VXLAN device.
 *
 * tc ingress: a packet from another node carries the source's security
 * identity as its VNI; it goes to the local endpoint with that identity in
 * the mark (deliver_from_overlay, lib/encap.h). Most such packets never
 * get here: bpf_host takes them off the wire first. This is the path for
 * the rest (other senders' checksummed VXLAN, outer fragments, packets for
 * the node's own addresses, IPv6 pods' packets) and for all of it while
 * bpf_host is detached. IPv6 is only delivered to local endpoints: the
 * destination endpoint's policy program parses it and enforces.
 *
 * tc egress: endpoints' packets arrive already encapsulated (their tunnel key
 * is set). What the node's own stack routes here (the remote pod CIDRs of
 * both families point at this device) gets its tunnel key from the ipcache,
 * with the VNI taken from the mark: the client's identity for the L7
 * proxy's upstream connections on a client's behalf, else the host. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/ipv4.h"
#include "lib/ipcache.h"
#include "lib/events.h"
#include "lib/metrics.h"
#include "lib/encap.h"
#include "lib/ipv6.h"

/* An IPv6 packet from another node's endpoint: to the local endpoint it is
 * for, through that endpoint's policy program, like IPv4 (the VNI is the
 * source identity). Anything else IPv6 goes on to the stack. */
static __always_inline int from_overlay6(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct endpoint_info *ep;
	union v6addr daddr;
	int ret;

	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + offsetof(struct ipv6hdr, daddr),
			       &daddr, sizeof(daddr)) < 0)
		return TC_ACT_OK;
	ep = lookup_local_endpoint6(&daddr);
	if (!ep)
		return TC_ACT_OK;
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0) {
		update_metrics(skb->len, DROP_NO_TUNNEL_KEY, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	ret = ipv6_route_to(skb, ep->mac, ep->node_mac);
	if (ret) {
		update_metrics(skb->len, ret, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	tail_call_endpoint_policy(skb, ep,
				  key.tunnel_id == HOST_ID ? REMOTE_NODE_ID : key.tunnel_id, 0);
	return bpf_redirect(ep->ifindex, 0);
}

SEC("classifier")
int cil_from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct endpoint_info *dst_ep;
	struct flow f;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from_overlay6(skb);
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ret = parse_ipv4(skb, &f);
	if (ret) {
		update_metrics(skb->len, ret, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0) {
		update_metrics(skb->len, DROP_NO_TUNNEL_KEY, DIR_INGRESS);
		send_drop(DROP_NO_TUNNEL_KEY, 0, skb->ifindex, &f, 0, 0, DIR_INGRESS);
		return TC_ACT_SHOT;
	}

	dst_ep = lookup_local_endpoint(f.daddr);
	if (!dst_ep)
		return TC_ACT_OK;	/* for the node itself */
	return deliver_from_overlay(skb, dst_ep, key.tunnel_id);
}

/* The tunnel key for a packet the node's stack routed here towards a pod
 * behind `remote`'s node: the VNI is the client's identity for the L7
 * proxy's upstream connections on a client's behalf (their mark), else the
 * host's. 0, or a drop reason. */
static __always_inline int set_stack_tunnel_key(struct __sk_buff *skb,
						const struct remote_endpoint_info *remote)
{
	struct bpf_tunnel_key key = {};
	__u32 magic, identity;

	if (!remote || !remote->tunnel_endpoint)
		return DROP_NO_TUNNEL_ENDPOINT;
	identity = take_identity_mark(skb, &magic);
	if (magic != MARK_MAGIC_PROXY_EGRESS || !identity)
		identity = HOST_ID;
	key.remote_ipv4 = bpf_ntohl(remote->tunnel_endpoint);
	key.tunnel_id = identity;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

/* IPv6 the stack routed here (the remote nodes' IPv6 pod ranges point at
 * this device too): the node's own connections and the proxy's upstreams,
 * tunnelled like IPv4 by the ipcache's entry for the destination. */
static __always_inline int to_overlay6(struct __sk_buff *skb)
{
	struct flow6 f;
	int ret;

	ret = parse_ipv6(skb, &f);
	if (!ret)
		ret = set_stack_tunnel_key(skb, ipcache6_lookup(&f.daddr));
	if (ret) {
		update_metrics(skb->len, ret, DIR_EGRESS);
		if (ret == DROP_NO_TUNNEL_ENDPOINT)
			send_drop6(ret, 0, skb->ifindex, &f, 0, 0, DIR_EGRESS);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

SEC("classifier")
int cil_to_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct flow f;
	int ret;

	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK;	/* an endpoint's, encapsulated by bpf_lxc */
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return to_overlay6(skb);
	ret = parse_ipv4(skb, &f);
	if (!ret)
		ret = set_stack_tunnel_key(skb, ipcache_lookup(f.daddr));
	if (ret) {
		update_metrics(skb->len, ret, DIR_EGRESS);
		if (ret == DROP_NO_TUNNEL_ENDPOINT)
			send_drop(ret, 0, skb->ifindex, &f, 0, 0, DIR_EGRESS);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
