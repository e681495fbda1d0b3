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
 * take (vxlan_local_destination).
 *
 * It is also where clients outside the cluster reach services: packets to
 * a NodePort, LoadBalancer or external IP frontend go to a backend, and the
 * answers of backends on other nodes come back here (lib/nodeport.h). */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/encap.h"
#include "lib/proxy.h"
#include "lib/nodeport.h"
#include "lib/nodeport6.h"

/* Set by the agent at load time; VXLAN_PORT 0 = no overlay, and then
 * ENCAP_IFINDEX (the VXLAN device) is 0 too. */
volatile const __be32 NODE_IP = 0;
volatile const __u16 VXLAN_PORT = 0;
volatile const __u32 ENCAP_IFINDEX = 0;
/* The node's IPv6 address NodePort flows to other nodes leave from; all
 * zero: none (IPv6 frontends are then served by local backends only). */
volatile const __u64 NODE_IP6[2] = {};

static __always_inline int drop_here(struct __sk_buff *skb, __u8 reason)
{
	update_metrics(skb->len, reason, DIR_INGRESS);
	return TC_ACT_SHOT;
}

/* A client's packet to an external frontend of `svc`, to the backend the
 * service gives its flow. A local backend gets it from the client, through
 * its policy program, which remembers the service for the answer; another
 * node's from this node (source NAT). */
static __always_inline int nodeport_forward(struct __sk_buff *skb, struct flow *f,
					    const struct lb4_service *svc)
{
	struct remote_endpoint_info *remote;
	struct endpoint_info *ep;
	__u16 rev_nat = svc->rev_nat_index;
	int ret;

	ret = lb4_translate_to(skb, f, svc);
	if (ret)
		return drop_here(skb, ret);
	ep = lookup_local_endpoint(f->daddr);
	if (ep) {
		ret = ipv4_route_to(skb, ep->mac, ep->node_mac);
		if (ret)
			return drop_here(skb, ret);
		tail_call_endpoint_policy(skb, ep, identity_of(f->saddr), rev_nat);
		/* Without its policy program (being set up) the endpoint
		 * could not translate its answer: the client retries. */
		return drop_here(skb, DROP_MISSED_TAIL_CALL);
	}
	ret = nodeport_snat(skb, f, NODE_IP, rev_nat);
	if (ret)
		return drop_here(skb, ret);
	remote = ipcache_lookup(f->daddr);
	if (remote && remote->tunnel_endpoint && ENCAP_IFINDEX) {
		ret = encap_and_redirect(skb, ENCAP_IFINDEX, remote->tunnel_endpoint, WORLD_ID);
		return ret < 0 ? drop_here(skb, DROP_WRITE_ERROR) : ret;
	}
	ret = redirect_by_fib(skb, f);
	return ret < 0 ? drop_here(skb, -ret) : ret;
}

/* IPv6 from outside the node: services' clients and their answers
 * (lib/nodeport6.h); the rest goes on to the stack. A packet this cannot
 * parse is the stack's to judge, as for IPv4. */
static __always_inline int from_outside6(struct __sk_buff *skb)
{
	union v6addr node_ip6 = { .d1 = NODE_IP6[0], .d2 = NODE_IP6[1] };
	struct flow6 f;
	int ret;

	if (parse_ipv6(skb, &f))
		return TC_ACT_OK;
	ret = nodeport6_from_outside(skb, &f, &node_ip6, ENCAP_IFINDEX);
	if (ret == NODEPORT6_PASS)
		return TC_ACT_OK;
	return ret < 0 ? drop_here(skb, -ret) : ret;
}

/* Packets that are not VXLAN for a local endpoint: services' clients and
 * their answers, then the proxy's connections (only packets for local
 * endpoints can belong to those on a pod's behalf). */
static __always_inline int from_outside(struct __sk_buff *skb)
{
	struct lb4_service *svc;
	struct flow f;
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return from_outside6(skb);
	if (skb->protocol != bpf_htons(ETH_P_IP) || parse_ipv4(skb, &f))
		return TC_ACT_OK;
	if (f.protocol != IPPROTO_TCP && f.protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	if (f.daddr == NODE_IP) {
		ret = nodeport_unsnat(skb, &f, NODE_IP);
		if (ret < 0)
			return drop_here(skb, -ret);
		if (ret) {
			ret = redirect_by_fib(skb, &f);
			return ret < 0 ? drop_here(skb, -ret) : ret;
		}
	}
	svc = lb4_lookup_service(f.daddr, f.dport, f.protocol);
	if (svc && (svc->flags & SVC_FLAGS_EXTERNAL))
		return nodeport_forward(skb, &f, svc);
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
		return from_outside(skb);
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
