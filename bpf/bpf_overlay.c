/* Overlay datapath, attached at tc ingress of the node's collect-metadata
 * VXLAN device. A packet from another node's endpoint carries the source's
 * security identity as its VNI; it is delivered to the local endpoint with
 * that identity in the mark, and the endpoint's to-container program
 * enforces its ingress policy against it. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/ipv4.h"
#include "lib/ipcache.h"
#include "lib/events.h"
#include "lib/metrics.h"
#include "lib/encap.h"

SEC("classifier")
int cil_from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct endpoint_info *dst_ep;
	struct flow f;
	int ret;

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

	ret = ipv4_route_to(skb, dst_ep->mac, dst_ep->node_mac);
	if (ret) {
		update_metrics(skb->len, ret, DIR_INGRESS);
		return TC_ACT_SHOT;
	}
	set_identity_mark(skb, key.tunnel_id);
	return bpf_redirect(dst_ep->ifindex, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
