//! The exit codes of `verdict wait` (and of `csa session wait`): a closed
//! set, so that no code path can make one up.

use serde::{Deserialize, Serialize};

/// How a client exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub enum Exit {
    /// 0: the session succeeded, or it is alive and well at the cap
    /// (`kv_warm`).
    Success,
    /// 1: the session failed, or a wait could not be answered (unknown
    /// session, removed mid-wait).
    Failure,
    /// 2: bad invocation.
    Usage,
    /// 3: no daemon could be reached, or it broke the protocol.
    Unreachable,
    /// 124: the cap fired with no verdict and nothing alive.
    Timeout,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Unreachable => 3,
            Exit::Timeout => 124,
        }
    }

    /// The worst of two exits, as a wait on several sessions reports it: a
    /// refused session beats an unreachable daemon, which beats a failure,
    /// which beats a timeout, which beats success.
    pub fn worst(self, other: Exit) -> Exit {
        self.max(other)
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Timeout => 1,
            Exit::Failure => 2,
            Exit::Unreachable => 3,
            Exit::Usage => 4,
        }
    }
}

impl PartialOrd for Exit {
    fn partial_cmp(&self, other: &Exit) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Exit {
    fn cmp(&self, other: &Exit) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl From<Exit> for i32 {
    fn from(exit: Exit) -> i32 {
        exit.code()
    }
}

/// An exit code outside the closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exit code {0} is not one verdict uses (0, 1, 2, 3 or 124)")]
pub struct UnknownExit(pub i32);

impl TryFrom<i32> for Exit {
    type Error = UnknownExit;

    fn try_from(code: i32) -> Result<Exit, UnknownExit> {
        match code {
            0 => Ok(Exit::Success),
            1 => Ok(Exit::Failure),
            2 => Ok(Exit::Usage),
            3 => Ok(Exit::Unreachable),
            124 => Ok(Exit::Timeout),
            other => Err(UnknownExit(other)),
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit.code() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_the_worst_wins() {
        for exit in [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::Unreachable,
            Exit::Timeout,
        ] {
            assert_eq!(Exit::try_from(exit.code()), Ok(exit));
            assert_eq!(
                serde_json::to_string(&exit).ok(),
                Some(exit.code().to_string())
            );
        }
        assert_eq!(Exit::try_from(7), Err(UnknownExit(7)));
        assert!(serde_json::from_str::<Exit>("256").is_err());
        let order = [
            Exit::Success,
            Exit::Timeout,
            Exit::Failure,
            Exit::Unreachable,
            Exit::Usage,
        ];
        for (i, a) in order.iter().enumerate() {
            for b in &order[i..] {
                assert_eq!(a.worst(*b), *b);
                assert_eq!(b.worst(*a), *b);
            }
        }
    }
}
