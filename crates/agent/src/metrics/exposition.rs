//! Prometheus text exposition (format 0.0.4), written by hand: metric
//! families with HELP and TYPE lines, escaped label values, histograms as
//! cumulative `_bucket` series plus `_sum` and `_count`.

use std::fmt::Write as _;

use api::models::MetricSample;

use super::{HistogramData, REGENERATION_BUCKETS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series: a suffix of the family name (`_bucket`, `_sum`, `_count` for
/// histograms, empty otherwise), its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub suffix: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a counter or gauge series.
    pub fn with(mut self, labels: &[(&str, &str)], value: f64) -> Self {
        self.push(labels, value);
        self
    }

    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            suffix: "",
            labels: owned(labels),
            value,
        });
    }

    /// Adds the series of one histogram with [`REGENERATION_BUCKETS`].
    pub fn push_histogram(&mut self, labels: &[(&str, &str)], h: &HistogramData) {
        let mut cumulative = 0;
        for (le, n) in REGENERATION_BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let mut l = owned(labels);
            l.push(("le".into(), format_value(*le)));
            self.samples.push(Sample {
                suffix: "_bucket",
                labels: l,
                value: cumulative as f64,
            });
        }
        let mut inf = owned(labels);
        inf.push(("le".into(), "+Inf".into()));
        self.samples.push(Sample {
            suffix: "_bucket",
            labels: inf,
            value: h.count as f64,
        });
        self.samples.push(Sample {
            suffix: "_sum",
            labels: owned(labels),
            value: h.sum,
        });
        self.samples.push(Sample {
            suffix: "_count",
            labels: owned(labels),
            value: h.count as f64,
        });
    }
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The text a `/metrics` scrape returns.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
        for s in &f.samples {
            out.push_str(f.name);
            out.push_str(s.suffix);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(s.value));
        }
    }
    out
}

/// `GET /v1/metrics`: every series but histogram buckets, flat.
pub fn to_samples(families: &[Family]) -> Vec<MetricSample> {
    families
        .iter()
        .flat_map(|f| {
            f.samples
                .iter()
                .filter(|s| s.suffix != "_bucket")
                .map(move |s| MetricSample {
                    name: format!("{}{}", f.name, s.suffix),
                    labels: s.labels.iter().cloned().collect(),
                    value: s.value,
                })
        })
        .collect()
}

pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_render_with_help_and_type() {
        let families = [
            Family::new(
                "cilium_drop_count_total",
                Kind::Counter,
                "Total dropped packets",
            )
            .with(
                &[("reason", "Policy denied"), ("direction", "INGRESS")],
                3.0,
            ),
            Family::new("cilium_bpf_map_pressure", Kind::Gauge, "Fill level")
                .with(&[("map_name", "a\"b\\c\nd")], 0.25),
            Family::new("cilium_policy", Kind::Gauge, "Rules").with(&[], 2.0),
        ];
        assert_eq!(
            render(&families),
            "# HELP cilium_drop_count_total Total dropped packets\n\
             # TYPE cilium_drop_count_total counter\n\
             cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"} 3\n\
             # HELP cilium_bpf_map_pressure Fill level\n\
             # TYPE cilium_bpf_map_pressure gauge\n\
             cilium_bpf_map_pressure{map_name=\"a\\\"b\\\\c\\nd\"} 0.25\n\
             # HELP cilium_policy Rules\n\
             # TYPE cilium_policy gauge\n\
             cilium_policy 2\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let mut h = HistogramData::default();
        h.buckets[0] = 1;
        h.buckets[2] = 2;
        h.count = 4;
        h.sum = 7.5;
        let mut f = Family::new("x_seconds", Kind::Histogram, "h");
        f.push_histogram(&[("scope", "total")], &h);
        let text = render(&[f.clone()]);
        assert!(text.contains("x_seconds_bucket{scope=\"total\",le=\"0.001\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{scope=\"total\",le=\"0.005\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{scope=\"total\",le=\"5\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{scope=\"total\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("x_seconds_sum{scope=\"total\"} 7.5\n"));
        assert!(text.contains("x_seconds_count{scope=\"total\"} 4\n"));
        let list = to_samples(&[f]);
        let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["x_seconds_sum", "x_seconds_count"]);
        assert_eq!(list[1].labels["scope"], "total");
    }

    #[test]
    fn values() {
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }
}
