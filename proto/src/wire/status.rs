//! The answer to `status`, and the bounds it keeps.

use serde::{Deserialize, Serialize};

/// The daemon's counters, answered to `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusCounters {
    /// The daemon's pid.
    pub pid: u32,
    /// The daemon's version.
    pub version: String,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Session directories with at least one waiter.
    pub sessions: u64,
    /// Waits in flight.
    pub waiters: u64,
    /// Open client connections.
    pub connections: u64,
    /// Sessions watched with inotify.
    pub watches: u64,
    /// Sessions watched by slow poll (network roots, watch limit).
    pub polled: u64,
    /// Verdicts sent since start.
    pub verdicts_sent: u64,
    /// inotify queue overflows since start.
    pub queue_overflows: u64,
    /// Re-snapshots of every watched session (after an overflow).
    pub rescans: u64,
    /// Subscriptions in force.
    #[serde(default)]
    pub subscribers: u64,
    /// The sessions waited for, by id (at most [`MAX_STATUS_SESSIONS`];
    /// absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<WatchedSession>,
    /// Sessions waited for that `watched` leaves out, to stay within
    /// [`MAX_STATUS_SESSIONS`] and [`MAX_STATUS_LIST_BYTES`] (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub watched_omitted: u64,
    /// The connected clients (at most [`MAX_STATUS_SESSIONS`]), so that
    /// `verdict stop` can say who will start the daemon again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ConnectedClient>,
}

/// One connection in `status`'s list of clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectedClient {
    /// The client's pid, where the system tells it (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Its waits and subscriptions in force.
    pub waits: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Waits one connection may have in flight: one call of `verdict wait`
/// may name this many sessions (each costs the daemon about 600 bytes).
pub const MAX_WAITS_PER_CONNECTION: usize = 65_536;

/// How many sessions `status` lists at most.
pub const MAX_STATUS_SESSIONS: usize = 100;
/// Bytes of JSON `status`'s session list takes at most, so that the reply
/// fits in one protocol line whatever the paths (each up to `PATH_MAX`).
pub const MAX_STATUS_LIST_BYTES: usize = 32 * 1024;

impl StatusCounters {
    /// Sets `watched` to as much of `sessions` (sorted as it should be
    /// shown) as fits the bounds, and `watched_omitted` to the rest of
    /// `total`, the number of sessions waited for.
    pub fn list(&mut self, sessions: Vec<WatchedSession>, total: usize) {
        let mut bytes = 0;
        self.watched = sessions
            .into_iter()
            .take(MAX_STATUS_SESSIONS)
            .take_while(|entry| {
                bytes += serde_json::to_vec(entry).map_or(usize::MAX / 2, |json| json.len() + 1);
                bytes <= MAX_STATUS_LIST_BYTES
            })
            .collect();
        self.watched_omitted = total.saturating_sub(self.watched.len()) as u64;
    }
}

/// One session in `status`'s list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchedSession {
    /// The session id.
    pub session: String,
    /// The session directory.
    pub dir: String,
    /// Waits on it in flight.
    pub waiters: u64,
}
