/* Who owns an address: the identity of any IPv4 or IPv6 address, by
 * longest prefix. */
#ifndef __LIB_IPCACHE_H_
#define __LIB_IPCACHE_H_

#include "maps.h"

#define HOST_ID 1
#define WORLD_ID 2
/* The outside over IPv6 (Cilium's dual-stack world-ipv6); IPv4's stays 2. */
#define WORLD_IPV6_ID 10
#define REMOTE_NODE_ID 6

static __always_inline struct remote_endpoint_info *ipcache_lookup(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .ip4 = addr };
	struct remote_endpoint_info *host = bpf_map_lookup_elem(&cilium_ipcache_host, &addr);

	return host ? host : bpf_map_lookup_elem(&cilium_ipcache, &key);
}

/* Addresses nobody claimed are outside the cluster: the world. */
static __always_inline __u32 identity_of(__be32 addr)
{
	struct remote_endpoint_info *info = ipcache_lookup(addr);

	return info ? info->sec_identity : WORLD_ID;
}

static __always_inline struct endpoint_info *lookup_local_endpoint(__be32 addr)
{
	struct endpoint_key key = { .ip4 = addr };

	return bpf_map_lookup_elem(&cilium_lxc, &key);
}

/* The same for IPv6 addresses: cilium_ipcache6_host first (/128s), then
 * the cilium_ipcache6 trie; cilium_lxc6 for local endpoints. */
static __always_inline struct remote_endpoint_info *ipcache6_lookup(const union v6addr *addr)
{
	struct remote_endpoint_info *host = bpf_map_lookup_elem(&cilium_ipcache6_host, addr);
	struct ipcache6_key key = { .prefixlen = 128 };

	if (host)
		return host;
	__builtin_memcpy(key.ip6, addr->addr, 16);
	return bpf_map_lookup_elem(&cilium_ipcache6, &key);
}

static __always_inline __u32 identity_of6(const union v6addr *addr)
{
	struct remote_endpoint_info *info = ipcache6_lookup(addr);

	return info ? info->sec_identity : WORLD_IPV6_ID;
}

static __always_inline struct endpoint_info *lookup_local_endpoint6(const union v6addr *addr)
{
	struct endpoint6_key key = { .ip6 = *addr };

	return bpf_map_lookup_elem(&cilium_lxc6, &key);
}

#endif /* __LIB_IPCACHE_H_ */
