/* Host device datapath, at tc ingress of the node's underlay device (the one
 * carrying the node IP).
 *
 * cil_from_netdev: TCP packets from outside the node for a connection the
 * L7 proxy terminates under a local pod's address go to the proxy's socket
 * right here (proxy_assign_existing, lib/proxy.h says why the stack cannot
 * be left to find it). VXLAN packets from other nodes to local endpoints are
 * decapsulated right here and go to the endpoint exactly as the overlay
 * device would send them (deliver_from_overlay: the VNI's identity, the
 * endpoint's ingress policy, straight into the container). Taking them off
 * the wire skips the kernel's UDP and VXLAN receive path, whose
 * collect-metadata mode allocates a metadata dst for every packet and frees
 * it through RCU: a grace period's worth of callbacks every few packets,
 * and RCU's kthread competing with the workload for the CPU. Everything
 * else goes on to the stack untouched, VXLAN included when it is not ours to
 * take (vxlan_local_destination). */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/encap.h"
#include "lib/proxy.h"

/* Set by the agent at load time; VXLAN_PORT 0 = no overlay. */
volatile const __be32 NODE_IP = 0;
volatile const __u16 VXLAN_PORT = 0;

/* Only packets for local endpoints can belong to the proxy's connections
 * on a pod's behalf. */
static __always_inline int to_proxy_connection(struct __sk_buff *skb)
{
	struct flow f;

	if (skb->protocol != bpf_htons(ETH_P_IP) || parse_ipv4(skb, &f))
		return TC_ACT_OK;
	if (f.protocol == IPPROTO_TCP && lookup_local_endpoint(f.daddr))
		proxy_assign_existing(skb, &f);
	return TC_ACT_OK;
}

SEC("classifier")
int cil_from_netdev(struct __sk_buff *skb)
{
	struct endpoint_info *ep;
	__u32 vni;

	ep = VXLAN_PORT ? vxlan_local_destination(skb, NODE_IP, VXLAN_PORT, &vni) : NULL;
	if (!ep)
		return to_proxy_connection(skb);
	/* Outer Ethernet + inner IPv4 is left: deliver_from_overlay rewrites
	 * the MACs. A GSO packet's segment size is the inner TCP's and stays
	 * (FIXED_GSO), so the whole flow takes this path, in order. A failure
	 * leaves the packet as it was, for the stack. */
	if (bpf_skb_adjust_room(skb, -(__s32)VXLAN_DECAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return TC_ACT_OK;
	return deliver_from_overlay(skb, ep, vni);
}

char _license[] SEC("license") = "Dual BSD/GPL";
