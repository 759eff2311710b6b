//! The blocking client of verdictd: connect (starting the daemon if
//! nobody listens), wait, ask for the counters. Without a reachable
//! daemon, and when allowed, waits go on alone ([`crate::degraded`]).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use verdict_proto::codec::ReplyReader;
use verdict_proto::wire::{Event, Request, StatusCounters};

use crate::waits::{Mode, Waits};
use crate::{connect, Error, Verdict};

/// How to reach the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon's socket (by default `$VERDICT_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/verdictd.sock`, else `/tmp/verdictd-<uid>/verdictd.sock`).
    pub socket: PathBuf,
    /// Start `verdictd` when nobody listens (default: yes).
    pub spawn: bool,
    /// Wait without a daemon when none can be reached or started, the
    /// first time or after losing it mid-wait (default: yes; only when
    /// `spawn` is set too, since refusing to start a daemon asks for an
    /// error).
    pub fallback: bool,
    /// Never use a daemon: every wait is made here (default: no).
    pub no_daemon: bool,
    /// The caller's working directory, canonical: session ids are looked
    /// up in its project first (default: the current directory).
    pub cwd: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            socket: verdict_core::paths::socket_path(None, rustix::process::getuid().as_raw()),
            spawn: true,
            fallback: true,
            no_daemon: false,
            cwd: std::env::current_dir()
                .and_then(std::fs::canonicalize)
                .ok()
                .map(|dir| dir.to_string_lossy().into_owned()),
        }
    }
}

/// How long a wait may last before the cap fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cap {
    /// The daemon's cap (240 s unless configured).
    #[default]
    Default,
    /// No cap: wait until the session ends.
    Unlimited,
    /// This long (rounded up to whole milliseconds, never to zero).
    After(Duration),
}

impl Cap {
    /// The protocol's `cap_ms`: `None` for the daemon's, 0 for none.
    pub(crate) fn ms(self) -> Option<u64> {
        match self {
            Cap::Default => None,
            Cap::Unlimited => Some(0),
            Cap::After(cap) => {
                let ms = cap.as_nanos().div_ceil(1_000_000);
                Some(u64::try_from(ms).unwrap_or(u64::MAX).max(1))
            }
        }
    }
}

/// The daemon's counters, and the line they came in.
#[derive(Debug, Clone)]
pub struct Status {
    /// The counters.
    pub counters: StatusCounters,
    /// The reply as one protocol line (what `verdict status --json` prints).
    pub line: String,
}

/// A connection to verdictd, or the note that waits are made here.
#[derive(Debug)]
pub struct Client {
    pub(crate) options: Options,
    pub(crate) link: Link,
    /// The next request id: every request of a connection has its own.
    pub(crate) next_id: u64,
}

#[derive(Debug)]
pub(crate) enum Link {
    Daemon(Conn),
    /// No daemon: why (`None` when asked for with `no_daemon`).
    Alone(Option<String>),
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: UnixStream,
    pub(crate) reader: ReplyReader<UnixStream>,
}

impl Conn {
    fn new(stream: UnixStream) -> Result<Conn, String> {
        let reading = stream
            .try_clone()
            .map_err(|err| format!("cannot use the connection to verdictd: {err}"))?;
        Ok(Conn {
            stream,
            reader: ReplyReader::new(reading),
        })
    }

    /// Sends request lines, all at once.
    pub(crate) fn send(&self, lines: &[u8]) -> std::io::Result<()> {
        (&self.stream).write_all(lines)
    }
}

impl Client {
    /// Connects to the daemon at `options.socket`, starting it if allowed.
    /// When it cannot be reached or started and `options.fallback` allows,
    /// the client waits without it ([`Client::degraded`] says why).
    pub fn connect(options: Options) -> Result<Client, Error> {
        let link = if options.no_daemon {
            Link::Alone(None)
        } else {
            match Client::open(&options) {
                Ok(conn) => Link::Daemon(conn),
                Err(message) if options.spawn && options.fallback => Link::Alone(Some(message)),
                Err(message) => return Err(Error::Unreachable(message)),
            }
        };
        Ok(Client {
            options,
            link,
            next_id: 1,
        })
    }

    fn open(options: &Options) -> Result<Conn, String> {
        Conn::new(connect::connect(&options.socket, options.spawn)?)
    }

    /// Connects again after losing the daemon; without a daemon to reach,
    /// goes on alone if allowed.
    pub(crate) fn reconnect(&mut self) -> Result<(), Error> {
        self.link = match Client::open(&self.options) {
            Ok(conn) => Link::Daemon(conn),
            Err(message) if self.options.spawn && self.options.fallback => {
                Link::Alone(Some(message))
            }
            Err(message) => return Err(Error::Unreachable(message)),
        };
        Ok(())
    }

    /// The options the client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// `None` while a daemon is used. `Some(why)` when waits are made here:
    /// `why` says why no daemon could be used, `None` when `no_daemon`
    /// asked for it.
    pub fn degraded(&self) -> Option<Option<&str>> {
        match &self.link {
            Link::Daemon(_) => None,
            Link::Alone(why) => Some(why.as_deref()),
        }
    }

    /// Waits for one session (an id, a unique prefix of one, or a
    /// directory) and returns its verdict: completed, or the cap's
    /// KV-warm or timeout answer.
    pub fn wait(&mut self, session: &str, cap: Cap) -> Result<Verdict, Error> {
        for update in self.wait_many(&[session], Mode::All, cap) {
            match update? {
                crate::Update::Verdict { verdict, .. } => return Ok(verdict),
                crate::Update::Refused { refusal, .. } => return Err(Error::Refused(refusal)),
                _ => {}
            }
        }
        Err(Error::Lost("the wait ended without an answer".into()))
    }

    /// Waits for several sessions at once (one connection): iterate the
    /// returned [`Waits`] for what happens, in arrival order. It ends when
    /// every session has an answer ([`Mode::All`]) or at the first
    /// completed one ([`Mode::Any`], which cancels the rest). Dropping it
    /// cancels what is still pending.
    pub fn wait_many<S: AsRef<str>>(&mut self, sessions: &[S], mode: Mode, cap: Cap) -> Waits<'_> {
        Waits::new(self, sessions, mode, cap)
    }

    /// The daemon's counters.
    pub fn status(&mut self) -> Result<Status, Error> {
        let socket = self.options.socket.display().to_string();
        let id = verdict_proto::wire::RequestId::from(self.next_id);
        self.next_id += 1;
        let conn = match &mut self.link {
            Link::Daemon(conn) => conn,
            Link::Alone(why) => {
                let why = why
                    .clone()
                    .unwrap_or_else(|| "the client was made without a daemon".into());
                return Err(Error::Unreachable(why));
            }
        };
        let _ = conn.stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = Request::Status.line(&id);
        if let Err(err) = conn.send(&request) {
            return Err(Error::Lost(format!(
                "cannot talk to verdictd at {socket}: {err}"
            )));
        }
        loop {
            let (reply, raw) = match conn.reader.read_reply() {
                Ok(Some(pair)) => pair,
                Ok(None) => {
                    return Err(Error::Lost(format!(
                        "verdictd at {socket} closed the connection without answering"
                    )))
                }
                Err(err) => {
                    return Err(Error::Lost(format!(
                        "no status from verdictd at {socket}: {err}"
                    )))
                }
            };
            // Replies to earlier requests may still be on their way.
            if reply.id != id {
                continue;
            }
            return match reply.event {
                Event::Status(counters) => Ok(Status {
                    counters,
                    line: String::from_utf8_lossy(&raw).into_owned(),
                }),
                Event::Error { message, .. } => Err(Error::Protocol(format!(
                    "verdictd at {socket} refused the request: {message}"
                ))),
                _ => Err(Error::Protocol(format!(
                    "verdictd at {socket} sent something other than its status; \
                     is it a verdictd of another version?"
                ))),
            };
        }
    }
}
