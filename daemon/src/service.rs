//! What the daemon tells its service manager and when it leaves on its own:
//! `STATUS=` lines with the session and waiter counts (at most one per
//! [`STATUS_INTERVAL`], the last change always reported), and the
//! `--exit-idle-after` timer. `READY=1` and `STOPPING=1` are sent by `main`.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::timers::{Timer, TimerId, Timers};

/// Fewest seconds between two `STATUS=` updates: counts change with every
/// wait, and the service manager only needs a human-readable summary.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Idle-exit and status-report state.
#[derive(Debug)]
pub struct Service {
    idle_after: Option<Duration>,
    idle_timer: Option<TimerId>,
    status: Option<StatusReport>,
}

#[derive(Debug)]
struct StatusReport {
    shown: Option<(usize, usize)>,
    last_sent: Option<Instant>,
    timer: Option<TimerId>,
}

impl Service {
    /// `idle_after`: exit after this long with nothing to do.
    pub fn new(idle_after: Option<Duration>) -> Service {
        let notify = std::env::var_os("NOTIFY_SOCKET").is_some();
        let status = notify.then_some(StatusReport {
            shown: None,
            last_sent: None,
            timer: None,
        });
        Service {
            idle_after,
            idle_timer: None,
            status,
        }
    }

    /// Called once per loop iteration with the current counts.
    pub fn update(&mut self, timers: &mut Timers, sessions: usize, waiters: usize, idle: bool) {
        match (idle, self.idle_after, self.idle_timer) {
            (true, Some(after), None) => self.idle_timer = Some(timers.add(after, Timer::Idle)),
            (false, _, Some(timer)) => {
                timers.cancel(timer);
                self.idle_timer = None;
            }
            _ => {}
        }
        let Some(report) = self.status.as_mut() else {
            return;
        };
        if report.shown == Some((sessions, waiters)) || report.timer.is_some() {
            return;
        }
        let since = report.last_sent.map_or(STATUS_INTERVAL, |at| at.elapsed());
        if since < STATUS_INTERVAL {
            report.timer = Some(timers.add(STATUS_INTERVAL - since, Timer::Status));
            return;
        }
        let noun =
            |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let text = format!(
            "watching {sessions} {} for {waiters} {}",
            noun(sessions, "session", "sessions"),
            noun(waiters, "waiter", "waiters")
        );
        if let Err(err) = sd_notify::notify(false, &[NotifyState::Status(&text)]) {
            log::debug!("cannot send STATUS to the service manager: {err}");
        }
        report.shown = Some((sessions, waiters));
        report.last_sent = Some(Instant::now());
    }

    /// A service timer fired; true when the daemon should exit (idle).
    pub fn on_timer(&mut self, timer: Timer) -> bool {
        match timer {
            Timer::Idle => {
                self.idle_timer = None;
                log::info!(
                    "idle for {:?}: exiting",
                    self.idle_after.unwrap_or_default()
                );
                true
            }
            Timer::Status => {
                if let Some(report) = self.status.as_mut() {
                    report.timer = None;
                }
                false
            }
            _ => false,
        }
    }
}
