//! One look at a session directory: every file the rules read, parsed,
//! with unchanged files taken from the previous look.

use std::path::Path;

use crate::files::{self, Cached, FileState, Output, Packet, PidFile, SessionResult};
use crate::track::{Name, Names, Plan};

/// Everything the rules need to know about one session directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `daemon.pid`.
    pub pid: FileState<PidFile>,
    /// `result.toml`.
    pub result: FileState<SessionResult>,
    /// `daemon-completion.toml`.
    pub packet: FileState<Packet>,
    /// `.complete` (legacy packet).
    pub legacy: FileState<Packet>,
    /// `output/result.toml`: csa's fallback when `result.toml` is missing.
    pub output_result: FileState<SessionResult>,
    /// What `stdout.log` holds. Read only when rule C3 needs it (an exit-0
    /// packet and no result); [`Output::Content`] otherwise.
    pub stdout: Output,
    /// `result.toml` and `output/result.toml` are not what they were at
    /// the caller's first look (at its watch): they arrived while it
    /// watched, so they are this run's, whatever their mtimes say (a clock
    /// stepped back makes a fresh file look older than `daemon.pid`).
    pub arrived: Arrived,
}

/// Which results the caller saw arrive (see [`Snapshot::arrived`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrived {
    /// `result.toml`.
    pub result: bool,
    /// `output/result.toml`.
    pub output_result: bool,
}

/// The last reading of each session file, so that unchanged files are not
/// read again (see [`files::load_cached`]).
#[derive(Debug, Clone, Default)]
pub struct SnapshotCache {
    pid: Cached<PidFile>,
    result: Cached<SessionResult>,
    packet: Cached<Packet>,
    legacy: Cached<Packet>,
    output_result: Cached<SessionResult>,
    /// The results' stamps at the first look: anything else arrived since.
    first: Option<[Option<files::Stamp>; 2]>,
    /// The last reading of every file (with what was read ahead since):
    /// what a look that does not read a file again says of it.
    last: Option<Snapshot>,
}

impl SnapshotCache {
    /// Notes the results' stamps at the first look; later, which of them
    /// changed since.
    fn arrived(&mut self) -> Arrived {
        let stamp = |cached: &Cached<SessionResult>| cached.as_ref().map(|(stamp, _)| *stamp);
        let now = [stamp(&self.result), stamp(&self.output_result)];
        let Some(first) = self.first else {
            self.first = Some(now);
            return Arrived::default();
        };
        let new = |i: usize| now[i].is_some() && now[i] != first[i];
        Arrived {
            result: new(0),
            output_result: new(1),
        }
    }
}

impl Snapshot {
    /// Reads the session files of `dir`; never blocks, never panics.
    pub fn read(dir: &Path) -> Snapshot {
        Snapshot::read_cached(dir, &mut SnapshotCache::default())
    }

    /// Reads the session files of `dir` that changed since `cache` saw them.
    pub fn read_cached(dir: &Path, cache: &mut SnapshotCache) -> Snapshot {
        Snapshot::read_planned(dir, cache, &Plan::FULL)
    }

    /// Reads the session files of `dir` that `plan` names, each only if it
    /// changed since `cache` saw it; the others are as `cache` last read
    /// them. A plan that is not full needs a full read before it.
    pub fn read_planned(dir: &Path, cache: &mut SnapshotCache, plan: &Plan) -> Snapshot {
        let mut snap = match cache.last.take() {
            Some(last) if !plan.full => last,
            _ => Snapshot::empty(),
        };
        let full = plan.full || cache.first.is_none();
        snap.load(dir, cache, if full { Plan::FULL.files } else { plan.files });
        if full || plan.output {
            snap.output_result = files::load_cached(
                &dir.join(files::OUTPUT_RESULT_FILE),
                files::parse_result,
                &mut cache.output_result,
            );
        }
        snap.arrived = cache.arrived();
        snap.stdout = if snap.needs_stdout() {
            files::stdout_state(dir)
        } else {
            Output::Content
        };
        cache.last = Some(snap.clone());
        snap
    }

    /// Reads `names` now, into `cache`'s last reading (nothing before a
    /// first full read).
    pub fn read_ahead(dir: &Path, cache: &mut SnapshotCache, names: Names) {
        if let Some(mut last) = cache.last.take() {
            last.load(dir, cache, names);
            cache.last = Some(last);
        }
    }

    /// Loads the files of the directory among `names`.
    fn load(&mut self, dir: &Path, cache: &mut SnapshotCache, names: Names) {
        if names.contains(Name::Pid) {
            self.pid = files::load_cached(
                &dir.join(files::PID_FILE),
                files::parse_pid_file,
                &mut cache.pid,
            );
        }
        if names.contains(Name::Result) {
            self.result = files::load_cached(
                &dir.join(files::RESULT_FILE),
                files::parse_result,
                &mut cache.result,
            );
        }
        if names.contains(Name::Packet) {
            self.packet = files::load_cached(
                &dir.join(files::PACKET_FILE),
                files::parse_packet,
                &mut cache.packet,
            );
        }
        if names.contains(Name::Legacy) {
            self.legacy = files::load_cached(
                &dir.join(files::LEGACY_FILE),
                files::parse_legacy,
                &mut cache.legacy,
            );
        }
    }

    /// Rule C3 asks what `stdout.log` holds only for an exit-0 packet with
    /// no result: reading a large log for anything else would be waste.
    fn needs_stdout(&self) -> bool {
        let packet = self.packet.value().or_else(|| self.legacy.value());
        packet.is_some_and(|p| p.exit_code == 0) && self.result.value().is_none()
    }

    /// An empty directory: no files at all.
    pub fn empty() -> Snapshot {
        Snapshot {
            pid: FileState::Absent,
            result: FileState::Absent,
            packet: FileState::Absent,
            legacy: FileState::Absent,
            output_result: FileState::Absent,
            stdout: Output::Missing,
            arrived: Arrived::default(),
        }
    }
}
