/* Per-reason packet and byte counters, per CPU so updates never contend. */
#ifndef __LIB_METRICS_H_
#define __LIB_METRICS_H_

#include "maps.h"

static __always_inline void update_metrics(__u32 bytes, __u8 reason, __u8 dir)
{
	struct metrics_key key = { .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&cilium_metrics, &key);

	if (v) {
		v->packets++;
		v->bytes += bytes;
	} else {
		struct metrics_value init = { .packets = 1, .bytes = bytes };

		bpf_map_update_elem(&cilium_metrics, &key, &init, BPF_NOEXIST);
	}
}

#endif /* __LIB_METRICS_H_ */
