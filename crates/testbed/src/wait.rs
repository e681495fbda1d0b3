//! Polling with a deadline: the agent applies changes asynchronously, so
//! tests wait for an observable outcome instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// Calls `check` until it returns true or `timeout` passes (it is always
/// called at least once); returns the last result.
pub fn eventually(timeout: Duration, interval: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_first_success() {
        let mut calls = 0;
        assert!(eventually(Duration::from_secs(1), Duration::ZERO, || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_after_timeout() {
        assert!(!eventually(
            Duration::from_millis(30),
            Duration::from_millis(5),
            || false
        ));
    }
}
