/* Shared basics for every datapath program: kernel headers, return codes,
 * and the small vocabulary (directions, drop reasons, observation points)
 * that the agent mirrors in crates/datapath. */
#ifndef __LIB_COMMON_H_
#define __LIB_COMMON_H_

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Direction of a flow seen from the endpoint whose program runs. */
enum {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* Forwarded traffic is reason 0; drops use Cilium's numbering so that
 * `cilium monitor` readers recognise them. */
enum {
	REASON_FORWARDED = 0,
	DROP_INVALID_SIP = 132,
	DROP_POLICY = 133,
	DROP_INVALID = 134,
	DROP_CT_INVALID_HDR = 135,
	DROP_UNKNOWN_L3 = 139,
	DROP_MISSED_TAIL_CALL = 140,
	DROP_WRITE_ERROR = 141,
	DROP_NO_TUNNEL_KEY = 147,
	DROP_UNKNOWN_TARGET = 150,	/* neighbour solicitation for nobody we answer for */
	DROP_INVALID_EXTHDR = 156,	/* IPv6: a chain of extension headers too long, or none */
	DROP_NO_SERVICE = 158,
	DROP_NO_TUNNEL_ENDPOINT = 160,
	DROP_NAT_NO_MAPPING = 167,
	DROP_NO_FIB = 169,
	DROP_FRAG_NOT_FOUND = 175,	/* a later fragment whose first one was not seen */
	DROP_PROXY_LOOKUP_FAILED = 178,
	DROP_PROXY_SET_FAILED = 179,
	DROP_PROXY_UNKNOWN_PROTO = 180,
	DROP_POLICY_DENY = 181,
};

/* Where a trace event was observed. */
enum {
	TRACE_TO_LXC = 0,	/* delivered to a local endpoint */
	TRACE_TO_PROXY = 1,	/* handed to the L7 proxy */
	TRACE_TO_STACK = 3,	/* handed to the host stack */
	TRACE_TO_OVERLAY = 4,	/* encapsulated towards another node */
	TRACE_FROM_LXC = 5,	/* left an endpoint */
	TRACE_FROM_OVERLAY = 7,	/* arrived from another node */
};

#define ETH_ALEN 6

/* linux/icmp.h drags in glibc headers, which BPF C must not include. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
	} un;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#endif /* __LIB_COMMON_H_ */
