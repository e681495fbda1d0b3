//! A waker for the futures one task polls in a loop (see `driver`): wakes
//! that happen while the task itself is polling only ask for one more pass
//! of the loop, instead of scheduling the task again. Without it, every
//! frame a stream queues on a connection (h2 wakes the connection's task
//! for it) would cost a trip through the scheduler, although the loop
//! polls that connection right after anyway.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN_WHILE_POLLING: u8 = 2;

#[derive(Default)]
pub struct Coalescing {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Coalescing {
    pub fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }

    /// The task starts a poll: later wakes wake `task` only once the poll
    /// has ended (`try_sleep`).
    pub fn start_poll(&self, task: &Waker) {
        self.task.register(task);
        self.state.store(POLLING, Ordering::Release);
    }

    /// Whether the task may sleep now: false if something was woken during
    /// this pass (the task polls once more; the flag is reset).
    pub fn try_sleep(&self) -> bool {
        match self
            .state
            .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                self.state.store(POLLING, Ordering::Release);
                false
            }
        }
    }

    /// Ends a poll that returns with work left (the task will be
    /// scheduled again by the caller's own wake).
    pub fn end_poll(&self) {
        self.state.store(IDLE, Ordering::Release);
    }
}

impl Wake for Coalescing {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.compare_exchange(
            POLLING,
            WOKEN_WHILE_POLLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) | Err(WOKEN_WHILE_POLLING) => {}
            Err(_) => self.task.wake(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wakes_during_a_poll_only_ask_for_another_pass() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let coalescing = Arc::new(Coalescing::default());
        let waker = coalescing.waker();
        coalescing.start_poll(&task);
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert!(!coalescing.try_sleep(), "woken during the pass");
        assert!(coalescing.try_sleep(), "nothing new since");
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "once until polled again");
        coalescing.start_poll(&task);
        coalescing.end_poll();
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }
}
