/* Per-reason packet and byte counters, per CPU so updates never contend. */
#ifndef __LIB_METRICS_H_
#define __LIB_METRICS_H_

#include "maps.h"

static __always_inline void update_metrics(__u32 bytes, __u8 reason, __u8 dir)
{
	__u32 index = (__u32)reason | ((__u32)(dir & 1) << 8);
	struct metrics_value *v = bpf_map_lookup_elem(&cilium_metrics, &index);

	if (v) {
		v->packets++;
		v->bytes += bytes;
	}
}

#endif /* __LIB_METRICS_H_ */
