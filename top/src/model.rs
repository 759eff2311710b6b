//! What `verdict top` shows: the sessions (from the first scan, then from
//! the event stream), the daemon's own figures, and the counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use verdict_client::sessions::Row;
use verdict_client::wire::{Started, VerdictEvent};

/// The daemon's figures, read once per connection (never polled).
#[derive(Debug, Clone, Default)]
pub struct Daemon {
    pub version: String,
    pub pid: u32,
    pub waiters: u64,
    pub connections: u64,
    /// The subscription was lost and made again.
    pub reconnected: bool,
}

#[derive(Debug, Default)]
pub struct Model {
    pub roots: Vec<PathBuf>,
    pub rows: Vec<Row>,
    /// Session directory → its row in `rows` (an event finds its row in
    /// constant time, with 10,000 of them).
    index: HashMap<String, usize>,
    pub daemon: Daemon,
    /// The daemon is gone, and why (until it is back).
    pub lost: Option<String>,
}

/// Which rows are shown.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub failed_only: bool,
    /// A part of the id or the project.
    pub text: String,
}

impl Model {
    /// Rows from a scan: those the stream has not spoken for yet.
    pub fn scanned(&mut self, rows: Vec<Row>) {
        for row in rows {
            if !self.index.contains_key(&row.dir) {
                self.index.insert(row.dir.clone(), self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// Rows read again (after a reconnect): they replace what was shown,
    /// keeping the project and the start time already known.
    pub fn reread(&mut self, rows: Vec<Row>) {
        for mut row in rows {
            let Some(&at) = self.index.get(&row.dir) else {
                continue;
            };
            let old = &mut self.rows[at];
            row.project = std::mem::take(&mut old.project);
            row.started = row.started.or(old.started);
            *old = row;
        }
    }

    pub fn started(&mut self, started: &Started) {
        let row = self.row(&started.session, &started.dir);
        row.running = true;
        row.alive = started.pid.is_some();
        row.pid = started.pid;
        row.started.get_or_insert_with(SystemTime::now);
        row.ended = None;
        row.status = None;
        row.exit_code = None;
        row.wait_exit = None;
    }

    pub fn ended(&mut self, verdict: &VerdictEvent) {
        let dir = verdict.dir.clone().unwrap_or_default();
        let row = self.row(&verdict.session, &dir);
        row.running = false;
        row.alive = false;
        row.ended = Some(SystemTime::now());
        row.status = Some(verdict.status.clone());
        row.exit_code = verdict.exit_code;
        row.wait_exit = Some(verdict.exit.code());
        row.synthetic = verdict.synthetic.unwrap_or(false);
    }

    fn row(&mut self, id: &str, dir: &str) -> &mut Row {
        let at = match self.index.get(dir) {
            Some(&at) => at,
            None => {
                self.index.insert(dir.to_string(), self.rows.len());
                self.rows.push(Row {
                    id: id.to_string(),
                    project: self.project_of(dir),
                    dir: dir.to_string(),
                    running: false,
                    pid: None,
                    alive: false,
                    started: None,
                    ended: None,
                    status: None,
                    exit_code: None,
                    wait_exit: None,
                    synthetic: false,
                });
                self.rows.len() - 1
            }
        };
        &mut self.rows[at]
    }

    /// The path between a root and `/sessions/`.
    fn project_of(&self, dir: &str) -> String {
        let dir = std::path::Path::new(dir);
        let project = dir.parent().and_then(|sessions| sessions.parent());
        self.roots
            .iter()
            .find_map(|root| project.and_then(|p| p.strip_prefix(root).ok()))
            .map_or_else(String::new, |p| p.display().to_string())
    }

    /// The rows shown, grouped by project, newest first in each.
    pub fn shown(&self, filter: &Filter) -> Vec<&Row> {
        let text = filter.text.to_lowercase();
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| !filter.failed_only || r.failed())
            .filter(|r| {
                text.is_empty()
                    || r.id.to_lowercase().contains(&text)
                    || r.project.to_lowercase().contains(&text)
            })
            .collect();
        rows.sort_by(|a, b| a.project.cmp(&b.project).then_with(|| b.id.cmp(&a.id)));
        rows
    }

    /// Running, ended in the last hour, failed.
    pub fn counts(&self) -> (usize, usize, usize) {
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let running = self.rows.iter().filter(|r| r.running).count();
        let recent = self
            .rows
            .iter()
            .filter(|r| r.ended.is_some_and(|at| at >= hour_ago))
            .count();
        let failed = self.rows.iter().filter(|r| r.failed()).count();
        (running, recent, failed)
    }

    pub fn header(&self) -> String {
        let (running, recent, failed) = self.counts();
        let again = match &self.lost {
            Some(lost) => format!(" · retrying: {lost}"),
            None if self.daemon.reconnected => " · reconnected".into(),
            None => String::new(),
        };
        format!(
            "verdictd {} (pid {}){again} · {running} running · {recent} ended in the last hour · {failed} failed · {} waits · {} connections",
            self.daemon.version, self.daemon.pid, self.daemon.waiters, self.daemon.connections
        )
    }
}

/// A duration as `1h02m`, `3m05s` or `12s`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// How long a row ran (to now while it runs).
pub fn elapsed(row: &Row) -> Option<Duration> {
    let start = row.started?;
    let end = row.ended.unwrap_or_else(SystemTime::now);
    end.duration_since(start).ok()
}

/// The cells of a row: project, id, state, pid, alive, elapsed, status,
/// exit, synthetic, ended.
pub fn cells(row: &Row) -> [String; 10] {
    let ended = row.ended.map_or_else(String::new, |at| {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        verdict_client::csa1142::utc_seconds(secs)[11..].to_string()
    });
    [
        row.project.clone(),
        row.id.chars().take(12).collect(),
        if row.running { "running" } else { "ended" }.into(),
        row.pid.map_or_else(String::new, |p| p.to_string()),
        if row.alive { "yes" } else { "no" }.into(),
        elapsed(row).map_or_else(String::new, short),
        row.status.clone().unwrap_or_default(),
        row.exit_code.map_or_else(String::new, |c| c.to_string()),
        if row.synthetic { "synthetic" } else { "" }.into(),
        ended,
    ]
}

pub const HEADINGS: [&str; 10] = [
    "PROJECT", "ID", "STATE", "PID", "ALIVE", "ELAPSED", "STATUS", "EXIT", "SYNTH", "ENDED",
];
