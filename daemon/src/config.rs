//! The daemon's configuration file (README.md, "The daemon"): strict TOML, read at start-up
//! and again on SIGHUP.
//!
//! An unknown key, a wrong type or a relative root is an error that names
//! the key and its line; the caller decides whether that is fatal (start-up)
//! or logged while the old config stays in force (reload). This module does
//! not watch the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

/// Cap applied when a wait names none: csa's own default wait.
pub const DEFAULT_CAP_MS: u64 = verdict_proto::wire::DEFAULT_CAP_MS;
pub use verdict_core::rules::{DEFAULT_GRACE_MS, DEFAULT_LAUNCH_GRACE_MS};
use verdict_core::track::Timing;

/// How often a session without events (network root, watch limit, no
/// pidfd for a live process) is looked at.
pub use verdict_core::track::DEFAULT_POLL as POLL_INTERVAL;
/// Connections served at once; each costs one fd and a few KiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Waits in flight across every connection; more get `busy`. Each costs
/// about 600 bytes (the 100,000-wait benchmark stays under 64 MiB).
pub const DEFAULT_MAX_WAITS: usize = 131_072;
/// inotify watches before further sessions fall back to a slow poll; the
/// kernel's own `max_user_watches` usually stops us long before this.
pub const DEFAULT_MAX_WATCHES: usize = 1_000_000;

pub use verdict_core::resolve::Root;

/// The daemon's settings, after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Cap for waits that name none.
    pub default_cap_ms: u64,
    /// Rule C4's grace period.
    pub grace: Duration,
    /// Rule C5's launch grace period.
    pub launch_grace: Duration,
    /// Connections served at once; more get `busy`.
    pub max_connections: usize,
    /// Waits in flight at once, over all connections; more get `busy`.
    pub max_waits: usize,
    /// inotify watches before sessions are polled instead.
    pub max_watches: usize,
    /// Where ids are looked up, in order.
    pub roots: Vec<Root>,
}

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid for this daemon.
    #[error("config file {path}, line {line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    default_cap_ms: Option<u64>,
    grace_ms: Option<u64>,
    launch_grace_ms: Option<u64>,
    max_connections: Option<Spanned<usize>>,
    max_waits: Option<Spanned<usize>>,
    max_watches: Option<usize>,
    #[serde(default, rename = "root")]
    roots: Vec<RawRoot>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    path: Spanned<PathBuf>,
    #[serde(default)]
    poll: bool,
}

impl Config {
    /// The periods every session's tracker waits out.
    pub fn timing(&self) -> Timing {
        Timing {
            grace: self.grace,
            launch_grace: self.launch_grace,
            poll: POLL_INTERVAL,
        }
    }

    /// Loads `path` (a missing file at the default location means defaults),
    /// then appends the `--root` directories and the default csa root.
    pub fn load(
        path: Option<&Path>,
        required: bool,
        extra_roots: &[PathBuf],
        default_roots: Vec<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Config::parse(&text, path)?,
                Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
                    Config::parse("", path)?
                }
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: path.into(),
                        source,
                    })
                }
            },
            None => Config::parse("", Path::new("(none)"))?,
        };
        let extra = extra_roots.iter().cloned().chain(default_roots);
        for path in extra {
            if !config.roots.iter().any(|root| root.path == path) {
                config.roots.push(Root { path, poll: false });
            }
        }
        Ok(config)
    }

    /// Parses the text of a config file; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |line, message| ConfigError::Invalid {
            path: path.into(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let line = err.span().map_or(0, |span| line_of(text, span.start));
            invalid(line, err.message().trim().to_string())
        })?;
        let mut roots = Vec::new();
        for raw_root in raw.roots {
            let root_path = expand_home(raw_root.path.get_ref());
            if !root_path.is_absolute() {
                let line = line_of(text, raw_root.path.span().start);
                let message = format!(
                    "[[root]] path {:?} must be absolute (or start with ~/)",
                    raw_root.path.get_ref()
                );
                return Err(invalid(line, message));
            }
            roots.push(Root {
                path: root_path,
                poll: raw_root.poll,
            });
        }
        for (key, value) in [
            ("max_connections", &raw.max_connections),
            ("max_waits", &raw.max_waits),
        ] {
            if let Some(value) = value.as_ref().filter(|value| *value.get_ref() == 0) {
                let line = line_of(text, value.span().start);
                return Err(invalid(line, format!("{key} must be at least 1")));
            }
        }
        Ok(Config {
            default_cap_ms: raw.default_cap_ms.unwrap_or(DEFAULT_CAP_MS),
            grace: Duration::from_millis(raw.grace_ms.unwrap_or(DEFAULT_GRACE_MS)),
            launch_grace: Duration::from_millis(
                raw.launch_grace_ms.unwrap_or(DEFAULT_LAUNCH_GRACE_MS),
            ),
            max_connections: raw
                .max_connections
                .map_or(DEFAULT_MAX_CONNECTIONS, Spanned::into_inner),
            max_waits: raw.max_waits.map_or(DEFAULT_MAX_WAITS, Spanned::into_inner),
            max_watches: raw.max_watches.unwrap_or(DEFAULT_MAX_WATCHES),
            roots,
        })
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/v.toml"))
    }

    #[test]
    fn defaults_and_roots() {
        let config =
            parse("grace_ms = 50\n[[root]]\npath = \"/nfs/s\"\npoll = true\n").expect("valid");
        assert_eq!(config.grace, Duration::from_millis(50));
        assert_eq!(config.default_cap_ms, DEFAULT_CAP_MS);
        assert_eq!(
            config.roots,
            vec![Root {
                path: "/nfs/s".into(),
                poll: true
            }]
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("grace_ms = 5\n\nbogus_key = 1\n")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("bogus_key") && err.contains("line 3"), "{err}");
        let err = parse("[[root]]\npath = \"/x\"\npolll = true\n")
            .expect_err("typo")
            .to_string();
        assert!(err.contains("polll") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_types_and_relative_roots_are_errors() {
        let err = parse("grace_ms = \"fast\"\n")
            .expect_err("type")
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = parse("[[root]]\npath = \"rel/dir\"\n")
            .expect_err("relative")
            .to_string();
        assert!(err.contains("rel/dir") && err.contains("line 2"), "{err}");
        assert!(parse("max_connections = 0").is_err());
        let err = parse("grace_ms = 5\n\nmax_waits = 0\n")
            .expect_err("zero")
            .to_string();
        assert!(err.contains("max_waits") && err.contains("line 3"), "{err}");
    }
}
