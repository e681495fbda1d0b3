//! Observability of the agent itself: the counters and health records that
//! the datapath's maps cannot tell (lost monitor events, regenerations,
//! background task outcomes), the Prometheus exposition built from them and
//! from the datapath, and map-pressure watching.
//!
//! One [`Registry`] is created in `main` and shared by `Arc`: the API
//! handlers reach it as an axum `Extension`, the Prometheus server and the
//! background tasks get a clone. Nothing here is global.

pub mod collect;
pub mod exposition;
pub mod hubble;
pub mod l7;
pub mod pressure;
pub mod server;

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Mutex,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::models::{BpfMapProperties, ControllerRunStatus, ControllerStatus};

/// Upper bounds (seconds) of the regeneration-time histogram's buckets.
pub const REGENERATION_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    inner: Mutex<HistogramData>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramData {
    /// Count per bucket of [`REGENERATION_BUCKETS`] (not cumulative).
    pub buckets: [u64; REGENERATION_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = REGENERATION_BUCKETS.iter().position(|le| secs <= *le) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn snapshot(&self) -> HistogramData {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Successes and failures of one background task, Cilium's controller shape.
#[derive(Debug)]
pub struct Controller {
    name: &'static str,
    run: Mutex<ControllerRunStatus>,
}

impl Controller {
    pub fn new(name: &'static str) -> Self {
        Controller {
            name,
            run: Mutex::new(ControllerRunStatus::default()),
        }
    }

    pub fn success(&self) {
        let mut r = self.run.lock().unwrap_or_else(|p| p.into_inner());
        r.success_count += 1;
        r.consecutive_failure_count = 0;
        r.last_success_timestamp = rfc3339(SystemTime::now());
    }

    pub fn failure(&self, msg: impl Into<String>) {
        let mut r = self.run.lock().unwrap_or_else(|p| p.into_inner());
        r.failure_count += 1;
        r.consecutive_failure_count += 1;
        r.last_failure_timestamp = rfc3339(SystemTime::now());
        r.last_failure_msg = msg.into();
    }

    pub fn status(&self) -> ControllerStatus {
        ControllerStatus {
            name: self.name.to_string(),
            status: self.run.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// Everything the agent counts about itself.
#[derive(Debug)]
pub struct Registry {
    /// Monitor events a slow client missed (sum over clients).
    pub monitor_lost_events: AtomicU64,
    pub regenerations_success: AtomicU64,
    pub regenerations_failure: AtomicU64,
    pub regeneration_time: Histogram,
    pub policy_import_errors: AtomicU64,
    /// False once the task draining the events ring has ended.
    pub events_reader_alive: AtomicBool,
    pub events_reader: Controller,
    pub ct_gc: Controller,
    pub map_pressure: Controller,
    /// Hubble's flow counts; exported only with `--enable-hubble`.
    pub hubble_flows: ::hubble::FlowMetrics,
    /// The map fill levels the pressure watcher saw last.
    maps: Mutex<Option<Vec<BpfMapProperties>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            monitor_lost_events: AtomicU64::new(0),
            regenerations_success: AtomicU64::new(0),
            regenerations_failure: AtomicU64::new(0),
            regeneration_time: Histogram::default(),
            policy_import_errors: AtomicU64::new(0),
            events_reader_alive: AtomicBool::new(true),
            events_reader: Controller::new("monitor-events-reader"),
            ct_gc: Controller::new("ct-map-gc"),
            map_pressure: Controller::new("bpf-map-pressure"),
            hubble_flows: ::hubble::FlowMetrics::default(),
            maps: Mutex::new(None),
        }
    }
}

impl Registry {
    /// `endpoints` regenerations that together took `took`; each counts
    /// with the share of the time.
    pub fn regenerated(&self, endpoints: u64, ok: bool, took: Duration) {
        let counter = if ok {
            &self.regenerations_success
        } else {
            &self.regenerations_failure
        };
        counter.fetch_add(endpoints, Ordering::Relaxed);
        if endpoints > 0 {
            let each = took / endpoints as u32;
            for _ in 0..endpoints {
                self.regeneration_time.observe(each);
            }
        }
    }

    pub fn set_maps(&self, maps: Vec<BpfMapProperties>) {
        *self.maps.lock().unwrap_or_else(|p| p.into_inner()) = Some(maps);
    }

    /// The last fill levels seen, `None` before the first look.
    pub fn maps(&self) -> Option<Vec<BpfMapProperties>> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events reader task ended (it should run as long as the agent).
    pub fn events_reader_ended(&self, why: String) {
        self.events_reader_alive.store(false, Ordering::Relaxed);
        self.events_reader.failure(why);
    }

    pub fn controllers(&self) -> Vec<ControllerStatus> {
        vec![
            self.events_reader.status(),
            self.ct_gc.status(),
            self.map_pressure.status(),
        ]
    }
}

/// `2024-05-01T12:00:00Z` for a system time (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // leap year
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn histogram_buckets_and_sum() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(10));
        let d = h.snapshot();
        assert_eq!(d.count, 3);
        assert_eq!(d.buckets[0], 1);
        assert_eq!(d.buckets[5], 1, "30 ms falls in le=0.05");
        assert_eq!(d.buckets.iter().sum::<u64>(), 2, "10 s is only in +Inf");
        assert!((d.sum - 10.0305).abs() < 1e-9);
    }

    #[test]
    fn controller_counts_consecutive_failures() {
        let c = Controller::new("x");
        c.failure("boom");
        c.failure("boom again");
        let s = c.status().status;
        assert_eq!((s.failure_count, s.consecutive_failure_count), (2, 2));
        assert_eq!(s.last_failure_msg, "boom again");
        c.success();
        assert_eq!(c.status().status.consecutive_failure_count, 0);
    }
}
