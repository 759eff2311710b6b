//! The event loop: one thread, one `mio::Poll` for the listening socket,
//! every client connection, every pidfd, the inotify fd and signals.
//! Timers set the poll timeout, so an idle daemon sleeps.
//!
//! This module runs the loop; [`clients`] accepts, reads, answers and
//! writes; what a wait means is the registry's business ([`crate::registry`]).

use std::io;
use std::time::Instant;

use anyhow::{Context, Result};
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use verdict_proto::wire::{ConnectedClient, StatusCounters};

use crate::config::Config;
use crate::conn::Conns;
use crate::lookup::Lookups;
use crate::registry::{Ctx, Registry, Stats, PIDFD_TAG};
use crate::service::Service;
use crate::socket::Listening;
use crate::timers::{Timer, Timers};
use verdict_core::watch::Watcher;

const LISTENER: Token = Token(0);
/// How soon a failed accept (out of fds) is tried again.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
const WATCHER: Token = Token(1);
const SIGNALS: Token = Token(2);
const LOOKUPS: Token = Token(3);
const FIRST_CONN: usize = 16;

/// How the config is re-read on SIGHUP.
pub type Reloader = Box<dyn Fn() -> Result<Config>>;

/// The daemon.
pub struct Server {
    core: Core,
    listener: UnixListener,
    _listening_guards: Option<crate::socket::Guards>,
    next_conn: usize,
    registry: Registry,
    reload: Reloader,
    signals: Signals,
    service: Service,
    uid: u32,
    started: Instant,
    shutdown: bool,
    /// Accepting failed for want of fds (or memory): retried on a timer,
    /// since the edge-triggered listener will not report the queued
    /// connections again. `None` while accepting works.
    accept_retry: Option<crate::timers::TimerId>,
    /// Logged once per episode of failing accepts.
    accept_failing: bool,
    /// Work left over from this turn for the next one, each bounded per
    /// turn so that no client, and no burst of file events, holds the loop.
    backlog: Backlog,
}

/// What a turn of the loop left to do: the poll is edge-triggered, so
/// input left unread at a bound is not reported again and must be
/// remembered here. While anything is in it the poll does not sleep.
#[derive(Debug, Default)]
struct Backlog {
    /// Connections with input still unread, served on the next turn after
    /// that turn's own events (each once: see `Conn::backlogged`).
    conns: Vec<Token>,
    /// Connections still waiting in the listen queue.
    accept: bool,
    /// inotify events still queued.
    watcher: bool,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.conns.is_empty() && !self.accept && !self.watcher
    }
}

mod clients;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("conns", &self.core.conns.len())
            .finish_non_exhaustive()
    }
}

/// What the registry works with, apart from the server's own parts: the
/// registry borrows it whole ([`Core::ctx`]) while the server holds on to
/// the registry.
struct Core {
    poll: Poll,
    conns: Conns,
    timers: Timers,
    watcher: Watcher,
    config: Config,
    stats: Stats,
    lookups: Lookups,
}

impl Core {
    fn ctx(&mut self) -> Ctx<'_> {
        Ctx {
            poll: self.poll.registry(),
            timers: &mut self.timers,
            watcher: &mut self.watcher,
            config: &self.config,
            out: &mut self.conns,
            stats: &mut self.stats,
            lookups: &self.lookups,
        }
    }
}

impl Server {
    /// Sets up the poll, the watcher and signal handling.
    pub fn new(
        listening: Listening,
        config: Config,
        reload: Reloader,
        uid: u32,
        idle_after: Option<std::time::Duration>,
    ) -> Result<Server> {
        let poll = Poll::new().context("cannot create the event poll")?;
        listening.listener.set_nonblocking(true)?;
        let mut listener = UnixListener::from_std(listening.listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let watcher = Watcher::new().context("cannot create the inotify instance")?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&watcher.fd()),
            WATCHER,
            Interest::READABLE,
        )?;
        let waker = mio::Waker::new(poll.registry(), LOOKUPS).context("cannot create a waker")?;
        let lookups = Lookups::start(waker).context("cannot start the id lookup thread")?;
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGHUP]).context("cannot install signal handlers")?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Server {
            core: Core {
                poll,
                conns: Conns::default(),
                timers: Timers::default(),
                watcher,
                config,
                stats: Stats::default(),
                lookups,
            },
            listener,
            _listening_guards: listening.guards,
            next_conn: FIRST_CONN,
            registry: Registry::default(),
            reload,
            signals,
            service: Service::new(idle_after),
            uid,
            started: Instant::now(),
            shutdown: false,
            accept_retry: None,
            accept_failing: false,
            backlog: Backlog::default(),
        })
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.shutdown {
            let timeout = if self.backlog.is_empty() {
                self.core.timers.timeout()
            } else {
                Some(std::time::Duration::ZERO)
            };
            if let Err(err) = self.core.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err).context("event poll failed");
            }
            let carried = std::mem::take(&mut self.backlog);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WATCHER => self.drain_watcher(),
                    SIGNALS => self.on_signals(),
                    LOOKUPS => self.registry.looked_up(&mut self.core.ctx()),
                    token if token.0 & PIDFD_TAG != 0 => {
                        // What inotify holds first: the exit's look then
                        // reads only what changed (see `Tracker::plan`).
                        self.drain_watcher();
                        self.registry.process_exited(&mut self.core.ctx(), token)
                    }
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // HUP: both directions are gone, not a half-close.
                            self.on_readable(token, event.is_write_closed() || event.is_error());
                        }
                        if event.is_writable() {
                            self.core.conns.write(self.core.poll.registry(), token);
                        }
                    }
                }
            }
            // Last turn's leftovers, after this turn's own events: a
            // flooding client gets one budget per turn, like everyone.
            if carried.accept {
                self.accept();
            }
            if carried.watcher {
                self.drain_watcher();
            }
            for token in carried.conns {
                self.on_backlog(token);
            }
            for timer in self.core.timers.due() {
                match timer {
                    Timer::Idle | Timer::Status => self.shutdown |= self.service.on_timer(timer),
                    Timer::Accept => {
                        self.accept_retry = None;
                        self.accept();
                    }
                    timer => self.registry.on_timer(&mut self.core.ctx(), timer),
                }
            }
            self.follow_up();
            self.registry.end_round(&mut self.core.watcher);
            let idle = self.core.conns.is_empty() && self.registry.waiters() == 0;
            let (sessions, waiters) = (self.registry.sessions(), self.registry.waiters());
            self.service
                .update(&mut self.core.timers, sessions, waiters, idle);
        }
        Ok(())
    }

    /// Reads what inotify has queued (bounded per turn) and hands it on.
    fn drain_watcher(&mut self) {
        let changes = self.core.watcher.drain();
        self.backlog.watcher |= self.core.watcher.more();
        self.registry.on_changes(&mut self.core.ctx(), changes);
    }

    fn on_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => match (self.reload)() {
                    Ok(config) => {
                        log::info!("configuration reloaded");
                        self.core.config = config;
                        self.registry.rescan_all(&mut self.core.ctx());
                    }
                    Err(err) => {
                        log::error!("reload failed, keeping the old configuration: {err:#}")
                    }
                },
                _ => {
                    log::info!("signal {signal}: shutting down");
                    self.shutdown = true;
                }
            }
        }
    }

    fn counters(&self) -> StatusCounters {
        let (listed, total) = self
            .registry
            .listed(verdict_proto::wire::MAX_STATUS_SESSIONS);
        let mut counters = StatusCounters {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sessions: self.registry.sessions() as u64,
            waiters: self.registry.waiters() as u64,
            connections: self.core.conns.len() as u64,
            watches: self.registry.watches() as u64,
            polled: (self.registry.sessions() - self.registry.watches()) as u64,
            verdicts_sent: self.core.stats.verdicts_sent,
            queue_overflows: self.core.stats.queue_overflows,
            rescans: self.core.stats.rescans,
            subscribers: self.registry.subscribers() as u64,
            watched: Vec::new(),
            watched_omitted: 0,
            clients: Vec::new(),
        };
        counters.list(listed, total);
        let mut clients: Vec<ConnectedClient> = self
            .core
            .conns
            .peers()
            .map(|(token, pid)| ConnectedClient {
                pid,
                waits: self.registry.conn_waits(token) as u64,
            })
            .collect();
        clients.sort_by_key(|client| client.pid);
        clients.truncate(verdict_proto::wire::MAX_STATUS_SESSIONS);
        counters.clients = clients;
        counters
    }
}
