/* Every map of the datapath and its key/value layout: the C/Rust ABI.
 * crates/datapath/src/maps/ mirrors each struct; a test compares both
 * against the BTF of the compiled object. Shared maps are pinned by name
 * under the agent's --bpf-root; the policy map is per endpoint and the
 * agent pins each instance as cilium_policy_<endpoint id>. */
#ifndef __LIB_MAPS_H_
#define __LIB_MAPS_H_

#include "common.h"

#define LIBBPF_PIN_BY_NAME 1

/* cilium_lxc: local endpoints by IPv4 address. */
struct endpoint_key {
	__be32 ip4;
};

struct endpoint_info {
	__u32 ifindex;		/* host-side veth */
	__u16 lxc_id;		/* endpoint id */
	__u16 flags;
	__u8 mac[ETH_ALEN];	/* container-side MAC */
	__u8 node_mac[ETH_ALEN];	/* host-side veth MAC */
	__u32 sec_id;		/* security identity */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65535);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lxc SEC(".maps");

/* cilium_ipcache: prefix -> identity of whoever owns the address. */
struct ipcache_key {
	__u32 prefixlen;
	__be32 ip4;
};

struct remote_endpoint_info {
	__u32 sec_identity;
	__be32 tunnel_endpoint;	/* node hosting the address; 0 = local */
	__u8 flags;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache SEC(".maps");

/* cilium_ipcache_host: the /32 entries of cilium_ipcache once more, by
 * address: endpoints and nodes are all /32s, and an exact match in a hash
 * costs a fraction of a trie walk. The trie answers for everything else
 * (CIDR identities, the world). The agent writes both. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache_host SEC(".maps");

/* cilium_policy_<ep>: (peer identity, direction, protocol, port) -> verdict,
 * as an LPM trie so that port ranges are prefixes of the port and "any
 * protocol" is a prefix that stops before the protocol. The identity and
 * direction are always matched exactly (prefixlen >= POLICY_PREFIX_L3);
 * identity 0 stands for any peer and is looked up separately. */
struct policy_key {
	__u32 prefixlen;
	__u32 sec_label;
	__u8 egress;
	__u8 protocol;
	__be16 dport;		/* ICMP: the message type */
};

#define POLICY_PREFIX_L3 40	/* identity + direction */
#define POLICY_PREFIX_FULL 64	/* ... + protocol + all port bits */

struct policy_entry {
	__be16 proxy_port;	/* 0 = no L7 redirect */
	__u8 deny;
	__u8 lpm_prefix_length;	/* prefixlen of the key, to tell L3 from L4 matches */
	__u8 pad[4];
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_policy SEC(".maps");

/* cilium_ct4_global: connection tracking. The direction in the key is the
 * side of the endpoint that created the entry, so the source's egress entry
 * and the destination's ingress entry of one flow coexist. */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 dir;
	__u16 pad;
};

enum {
	CT_SEEN_SYN = 1 << 0,
	CT_SEEN_REPLY = 1 << 1,
	CT_CLOSING = 1 << 2,
};

struct ct_entry {
	__u64 expires;		/* CLOCK_MONOTONIC seconds */
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u32 src_identity;
	__u16 flags;
	__u16 rev_nat_index;	/* service the flow was translated for; 0 = none */
	__u32 backend_id;	/* CT_SERVICE entries: the backend chosen */
	__u16 proxy_port;	/* the flow goes through the L7 proxy; 0 = not */
	__u16 pad;
};

/* Entry directions: created by the endpoint's egress or ingress, or the
 * service entry remembering which backend a client's flow to a VIP got. */
enum {
	CT_DIR_INGRESS = 0,
	CT_DIR_EGRESS = 1,
	CT_DIR_SERVICE = 2,
};

/* LRU, as in Cilium: under connection churn the oldest entries make room
 * instead of new flows failing to be tracked. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct4_global SEC(".maps");

/* cilium_lb4_services_v2: (VIP, port, protocol, slot) -> slot 0 is the
 * service (backend count, reverse-NAT index), slots 1..count name backends;
 * a backend appears in as many slots as its weight. */
struct lb4_key {
	__be32 address;
	__be16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 scope;
	__u8 pad[2];
};

/* lb4_service.flags of slot 0, Cilium's bits. The kinds a client outside
 * the cluster may reach, at a node's device; a ClusterIP is not one. */
#define SVC_FLAG_EXTERNAL_IP (1 << 0)
#define SVC_FLAG_NODEPORT (1 << 1)
#define SVC_FLAG_HOSTPORT (1 << 3)
#define SVC_FLAG_LOADBALANCER (1 << 5)
#define SVC_FLAGS_EXTERNAL (SVC_FLAG_EXTERNAL_IP | SVC_FLAG_NODEPORT | SVC_FLAG_HOSTPORT | \
			    SVC_FLAG_LOADBALANCER)

struct lb4_service {
	__u32 backend_id;
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags;
	__u8 flags2;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_services_v2 SEC(".maps");

/* cilium_lb4_backends_v3: backend id -> address. */
struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;
	__u8 flags;		/* BE_STATE_* */
	__u16 cluster_id;
	__u8 zone;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_backends_v3 SEC(".maps");

/* cilium_lb4_reverse_nat: reverse-NAT index -> the VIP replies come from. */
struct lb4_reverse_nat {
	__be32 address;
	__be16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_reverse_nat SEC(".maps");

/* cilium_lb4_reverse_sk: socket LB, (socket cookie, backend) -> VIP, so
 * getpeername() and recvmsg() show the service address. */
struct lb4_reverse_sk_key {
	__u64 cookie;
	__be32 address;
	__be16 port;
	__u16 pad;
};

struct lb4_reverse_sk {
	__be32 address;
	__be16 port;
	__u16 rev_nat_index;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_reverse_sk_key);
	__type(value, struct lb4_reverse_sk);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_reverse_sk SEC(".maps");

/* cilium_snat_v4_external: NodePort's source NAT. A client's flow to a
 * backend on another node leaves this node from the node's address, so the
 * backend's answer comes back here to be translated back. Both directions
 * of a translation have an entry: NAT_DIR_OUT by the client's tuple
 * (after DNAT) -> the node's address and port it got; NAT_DIR_IN by the
 * backend's answer -> the client's address and port, and the service to
 * answer from. */
enum {
	NAT_DIR_OUT = 0,
	NAT_DIR_IN = 1,
};

struct nat4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 dir;
	__u16 pad;
};

struct nat4_entry {
	__be32 to_addr;
	__be16 to_port;
	__u16 rev_nat_index;	/* NAT_DIR_IN: the service the client dialled */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat4_key);
	__type(value, struct nat4_entry);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_snat_v4_external SEC(".maps");

/* IPv6: the same design as IPv4, one map per family so that IPv4 keys stay
 * small and IPv4 lookups cost what they did. Values are shared with IPv4;
 * tunnel endpoints stay IPv4 (the underlay is IPv4). */
union v6addr {
	__u8 addr[16];
	__be32 p[4];
	struct {
		__u64 d1;
		__u64 d2;
	};
};

/* cilium_lxc6: local endpoints by IPv6 address. */
struct endpoint6_key {
	union v6addr ip6;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint6_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65535);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lxc6 SEC(".maps");

/* cilium_ipcache6: IPv6 prefix -> identity; cilium_ipcache6_host: its /128
 * entries once more, by address (see cilium_ipcache_host). */
struct ipcache6_key {
	__u32 prefixlen;
	__u8 ip6[16];		/* bytes: the trie wants the prefix right after prefixlen */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache6_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, union v6addr);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache6_host SEC(".maps");

/* cilium_ct6_global: connection tracking of IPv6 flows, keyed like
 * cilium_ct4_global, with the same entries. */
struct ct6_key {
	union v6addr saddr;
	union v6addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 dir;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct6_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct6_global SEC(".maps");

/* cilium_ipv6_frag_datagrams: what the first fragment of a datagram showed
 * of its L4 header, so that the later fragments (which carry none) are
 * decided on the same ports. Keyed by the fragment header's identification
 * and next header, as Cilium's map of the same name. */
struct frag6_key {
	union v6addr saddr;
	union v6addr daddr;
	__be32 id;
	__u8 nexthdr;
	__u8 pad[3];
};

struct frag6_l4 {
	__be16 sport;
	__be16 dport;
	__u8 protocol;		/* the L4 protocol after any further extension headers */
	__u8 icmp_type;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag6_key);
	__type(value, struct frag6_l4);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipv6_frag_datagrams SEC(".maps");

/* Service load balancing for IPv6 frontends over IPv6 backends: the
 * cilium_lb4_* design with IPv6 addresses, in maps of their own (Cilium's
 * names). Service ids (reverse-NAT indexes) and backend ids are shared
 * with IPv4: one id names one thing whatever its family. */
struct lb6_key {
	union v6addr address;
	__be16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 scope;
	__u8 pad[2];
};

struct lb6_service {
	__u32 backend_id;
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags;
	__u8 flags2;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb6_service);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb6_services_v2 SEC(".maps");

struct lb6_backend {
	union v6addr address;
	__be16 port;
	__u8 proto;
	__u8 flags;
	__u16 cluster_id;
	__u8 zone;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb6_backend);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb6_backends_v3 SEC(".maps");

struct lb6_reverse_nat {
	union v6addr address;
	__be16 port;
	__u16 pad;
	__u32 pad2;		/* explicit: the size is 24 on both sides */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb6_reverse_nat);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb6_reverse_nat SEC(".maps");

/* cilium_lb6_reverse_sk: socket LB over IPv6, (socket cookie, backend) ->
 * the VIP getpeername() and recvmsg() show. */
struct lb6_reverse_sk_key {
	__u64 cookie;
	union v6addr address;
	__be16 port;
	__u16 pad;
	__u32 pad2;		/* explicit: no uninitialised tail in a hash key */
};

struct lb6_reverse_sk {
	union v6addr address;
	__be16 port;
	__u16 rev_nat_index;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_reverse_sk_key);
	__type(value, struct lb6_reverse_sk);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb6_reverse_sk SEC(".maps");

/* cilium_snat_v6_external: cilium_snat_v4_external for IPv6 NodePort
 * flows to other nodes' backends, which leave from the node's IPv6
 * address; the same two directions per translation. */
struct nat6_key {
	union v6addr saddr;
	union v6addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 dir;
	__u16 pad;
};

struct nat6_entry {
	union v6addr to_addr;
	__be16 to_port;
	__u16 rev_nat_index;	/* NAT_DIR_IN: the service the client dialled */
	__u32 pad;		/* explicit: the size is 24 on both sides */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat6_key);
	__type(value, struct nat6_entry);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_snat_v6_external SEC(".maps");

/* cilium_events: drop, trace and policy-verdict notifications. */
enum {
	EVENT_DROP = 1,
	EVENT_TRACE = 2,
	EVENT_POLICY_VERDICT = 3,
	EVENT_TRACE_SOCK = 4,
};

enum {
	MATCH_NONE = 0,
	MATCH_L3_L4 = 1,
	MATCH_L3_ONLY = 2,
	MATCH_L4_ONLY = 3,
	MATCH_ALL = 4,
};

enum {
	CT_NEW = 0,
	CT_ESTABLISHED = 1,
	CT_REPLY = 2,
	CT_RELATED = 3,		/* an ICMP or ICMPv6 error about a tracked flow */
};

struct event {
	__u64 timestamp;
	__u8 type;
	__u8 subtype;		/* drop reason or observation point */
	__u16 ep_id;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 tcp_flags;
	__u8 dir;
	__u8 verdict;		/* policy verdict: 1 allow, 0 deny */
	__u8 match_type;
	__u8 ct_state;
	__u8 family;		/* 0: IPv4, saddr/daddr; EVENT_FAMILY_IPV6: a struct event6 */
	__u8 pad;
	__u32 length;
	__u32 cpu;
};

#define EVENT_FAMILY_IPV6 6

/* An IPv6 packet's event: the same event (its IPv4 addresses zero, family
 * EVENT_FAMILY_IPV6) followed by the addresses, so IPv4 events keep their
 * size and the reader tells the two apart by the family byte. */
struct event6 {
	struct event ev;
	union v6addr saddr6;
	union v6addr daddr6;
};

/* A socket LB translation (EVENT_TRACE_SOCK, subtype the translation
 * point): the destination before or after it (ev.daddr, or daddr6 when
 * family is EVENT_FAMILY_IPV6; no source, the socket has none yet) and
 * what names the socket: its cookie, network namespace and cgroup. */
struct trace_sock_event {
	struct event6 ev;
	__u64 sock_cookie;
	__u64 netns_cookie;
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events SEC(".maps");

/* cilium_events_lost: events the ring had no room for (the agent was not
 * scheduled in time), per CPU; the agent reports them to monitor clients. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events_lost SEC(".maps");

/* cilium_events_wanted: non-zero while some monitor client listens (the
 * agent's monitor sets it). With nobody listening the programs build no
 * events at all, so a connection costs no event work. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events_wanted SEC(".maps");

/* cilium_call_policy: each endpoint's cil_lxc_policy by endpoint id. Local
 * senders and the overlay tail-call into it to enforce the endpoint's
 * ingress policy and hand the packet straight into the container's
 * namespace. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_call_policy SEC(".maps");

/* cilium_metrics: packets and bytes per (reason, direction), per CPU, at
 * index reason | direction << 8: an array, so counting a packet costs no
 * hashing. */
#define METRICS_ENTRIES 512

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(max_entries, METRICS_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_metrics SEC(".maps");

#endif /* __LIB_MAPS_H_ */
