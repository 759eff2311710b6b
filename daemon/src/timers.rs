//! Deadlines for the event loop: per-waiter caps, each session's tracker
//! deadline (grace periods and slow-poll ticks) and the service's own. The loop sleeps until the earliest one, so with no
//! deadline set the daemon has zero wake-ups.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a timer is for; keys are the registry's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A waiter's cap.
    Cap(u64),
    /// A session's tracker deadline: a grace period (rules C4, C5, a
    /// vanished directory) or a polled session's next look.
    Session(u64),
    /// Accepting failed for want of fds: try again.
    Accept,
    /// `--exit-idle-after` ran out.
    Idle,
    /// A rate-limited `STATUS=` to the service manager is due.
    Status,
}

/// A handle to cancel a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(Instant, u64);

impl TimerId {
    /// When the timer fires.
    pub fn at(self) -> Instant {
        self.0
    }
}

/// All pending deadlines, ordered.
#[derive(Debug, Default)]
pub struct Timers {
    pending: BTreeMap<TimerId, Timer>,
    seq: u64,
}

impl Timers {
    /// Fires `timer` after `delay`.
    pub fn add(&mut self, delay: Duration, timer: Timer) -> TimerId {
        self.add_at(Instant::now() + delay, timer)
    }

    /// Fires `timer` at `at`.
    pub fn add_at(&mut self, at: Instant, timer: Timer) -> TimerId {
        self.seq += 1;
        let id = TimerId(at, self.seq);
        self.pending.insert(id, timer);
        id
    }

    /// Cancels a timer; cancelling one that already fired is harmless.
    pub fn cancel(&mut self, id: TimerId) {
        self.pending.remove(&id);
    }

    /// How long the loop may sleep, `None` for ever.
    pub fn timeout(&self) -> Option<Duration> {
        let (first, _) = self.pending.first_key_value()?;
        Some(first.0.saturating_duration_since(Instant::now()))
    }

    /// Removes and returns every timer that is due.
    pub fn due(&mut self) -> Vec<Timer> {
        let now = Instant::now();
        let mut fired = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            fired.push(entry.remove());
        }
        fired
    }
}

#[cfg(test)]
impl Timers {
    /// Removes and returns the pending timers for which `which` holds, as
    /// if their time had come (for tests: no waiting on the clock).
    pub fn fire(&mut self, which: impl Fn(&Timer) -> bool) -> Vec<Timer> {
        let ids: Vec<TimerId> = self
            .pending
            .iter()
            .filter(|(_, timer)| which(timer))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_cancel_works() {
        let mut timers = Timers::default();
        assert_eq!(timers.timeout(), None);
        let late = timers.add(Duration::from_secs(60), Timer::Cap(1));
        timers.add(Duration::ZERO, Timer::Session(2));
        let cancelled = timers.add(Duration::ZERO, Timer::Session(3));
        timers.cancel(cancelled);
        assert_eq!(timers.due(), vec![Timer::Session(2)]);
        assert!(timers
            .timeout()
            .is_some_and(|t| t > Duration::from_secs(50)));
        timers.cancel(late);
        assert_eq!(timers.timeout(), None);
    }
}
