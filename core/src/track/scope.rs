//! What a look must read: the names a watcher reported since the last
//! look, and when no such shortcut is safe.
//!
//! A look at a directory that a working watch covers reads only the files
//! named since the last look; the others keep their last reading. That is
//! correct by construction only while the watch tells every change:
//!
//! - an overflowed queue, or an event on the directory itself (moved,
//!   replaced, attributes), means a full look;
//! - a polled session (no watch, or a live process without a pidfd)
//!   always gets a full look, as does the first look and the one after
//!   the directory came back;
//! - `output/` and `locks/` are looked into whenever they may exist (they
//!   existed at the last look, or were named since), since a watch of the
//!   session directory does not see inside them;
//! - the probe checks the directory's own stamp (the `statx` it takes for
//!   the directory's identity anyway): if it changed while nothing was
//!   named, an event is missing, and the look is full.
//!
//! A verdict file named while the session's processes run and are watched
//! is read at once ([`super::Tracker::read_ahead`]), so that the exit
//! finds it read.

use std::ffi::OsStr;

use crate::files;
use crate::liveness::LOCKS_DIR;

/// A name in a session directory, as far as a look is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// `daemon.pid`.
    Pid,
    /// `result.toml`.
    Result,
    /// `daemon-completion.toml`.
    Packet,
    /// `.complete`.
    Legacy,
    /// `output/`, whose `result.toml` is csa's fallback.
    Output,
    /// `locks/`, whose tool locks name live processes.
    Locks,
    /// Anything else (`stdout.log`, a temp file).
    Other,
}

/// The directory holding `output/result.toml`.
pub(super) const OUTPUT_DIR: &str = "output";

impl Name {
    /// The name of an entry of the session directory.
    pub fn of(entry: &OsStr) -> Name {
        match entry.to_str() {
            Some(files::PID_FILE) => Name::Pid,
            Some(files::RESULT_FILE) => Name::Result,
            Some(files::PACKET_FILE) => Name::Packet,
            Some(files::LEGACY_FILE) => Name::Legacy,
            Some(OUTPUT_DIR) => Name::Output,
            Some(LOCKS_DIR) => Name::Locks,
            _ => Name::Other,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Name`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Names(u8);

impl Names {
    /// The files whose arrival can end a session.
    pub const VERDICT: Names =
        Names(1 << Name::Result as u8 | 1 << Name::Packet as u8 | 1 << Name::Legacy as u8);
    /// The files of the directory itself that a look reads.
    const FILES: Names = Names(Names::VERDICT.0 | 1 << Name::Pid as u8);

    /// Adds `name`.
    pub fn insert(&mut self, name: Name) {
        self.0 |= name.bit();
    }

    /// `name` is in the set.
    pub fn contains(self, name: Name) -> bool {
        self.0 & name.bit() != 0
    }

    /// The set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names in both sets.
    pub fn and(self, other: Names) -> Names {
        Names(self.0 & other.0)
    }

    /// The names in `self` and not in `other`.
    pub fn minus(self, other: Names) -> Names {
        Names(self.0 & !other.0)
    }
}

/// What a look reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Everything, each file checked against its stamp.
    pub full: bool,
    /// Otherwise, the files of the directory to read again; the others
    /// keep their last reading.
    pub files: Names,
    /// Look into `output/`.
    pub output: bool,
    /// List `locks/`.
    pub locks: bool,
    /// Something was named since the last look (even if none of it is to
    /// be read): the directory's own stamp may have changed.
    pub named: bool,
}

impl Plan {
    /// A full look.
    pub const FULL: Plan = Plan {
        full: true,
        files: Names::FILES,
        output: true,
        locks: true,
        named: true,
    };

    /// The look reads `name` again.
    pub fn reads(&self, name: Name) -> bool {
        self.full || self.files.contains(name)
    }

    /// A look that reads only what was named since the last one.
    pub(super) fn only(named: Names, any: bool, subdirs: Subdirs) -> Plan {
        Plan {
            full: false,
            files: named.and(Names::FILES),
            output: subdirs.output || named.contains(Name::Output),
            locks: subdirs.locks || named.contains(Name::Locks),
            named: any,
        }
    }
}

/// Which of the directories a watch does not see into were there at a
/// look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subdirs {
    /// `output/`.
    pub output: bool,
    /// `locks/`.
    pub locks: bool,
}
