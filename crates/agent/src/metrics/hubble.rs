//! Hubble's flow metrics (`--enable-hubble`): Cilium serves them from its
//! Hubble metrics server; here they join the agent's own endpoint. The
//! counts are kept by the hubble crate as flows enter the ring.

use hubble::metrics::{Counts, DROP_LABEL_NAMES, FLOW_LABEL_NAMES};

use super::exposition::{Family, Kind};

pub fn families(counts: &Counts) -> Vec<Family> {
    let mut flows = Family::new(
        "hubble_flows_processed_total",
        Kind::Counter,
        "Total number of flows processed",
    );
    for (values, n) in &counts.flows {
        let labels: Vec<(&str, &str)> = FLOW_LABEL_NAMES.into_iter().zip(*values).collect();
        flows.push(&labels, *n as f64);
    }
    let mut drops = Family::new("hubble_drop_total", Kind::Counter, "Number of drops");
    for (values, n) in &counts.drops {
        let labels: Vec<(&str, &str)> = DROP_LABEL_NAMES.into_iter().zip(*values).collect();
        drops.push(&labels, *n as f64);
    }
    vec![flows, drops]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::render;

    #[test]
    fn series_carry_ciliums_label_names() {
        let mut counts = Counts::default();
        counts.flows.insert(["UDP", "Drop", "", "DROPPED"], 3);
        counts.drops.insert(["POLICY_DENIED", "UDP"], 3);
        let text = render(&families(&counts));
        assert!(
            text.contains(
                "hubble_flows_processed_total{protocol=\"UDP\",type=\"Drop\",subtype=\"\",verdict=\"DROPPED\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"UDP\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hubble_drop_total counter\n"),
            "{text}"
        );
    }
}
