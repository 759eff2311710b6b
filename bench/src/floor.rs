//! The floors verdictd is measured against, in the same run, on the same
//! kind of events, read by the same readers.
//!
//! - **Relay** (`verdict-bench --relay SOCKET`): the least any daemon that
//!   tells waiters of an exit must do. Each connection sends a pid; the
//!   relay opens one pidfd per pid, says `watching`, and when the pidfd is
//!   readable writes one line to every connection of that pid. With one
//!   connection it is the *two-hop floor* (kernel wakes the watcher, the
//!   watcher writes, the kernel wakes the waiter); with 10,000 connections
//!   on one pid, the *fan-out floor*; with 1,000 pids, the *many-sessions
//!   floor* of a relay.
//! - **Kernel** ([`exits`]): the kills alone, with their pidfds polled in
//!   the harness and no daemon at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};

use crate::world::{Client, Session, World};

/// `verdict-bench --relay SOCKET`.
pub fn relay_child(args: &[String]) -> ! {
    let code = match args.first().map(|socket| relay(Path::new(socket))) {
        Some(Ok(())) => 0,
        Some(Err(err)) => {
            eprintln!("verdict-bench --relay: {err:#}");
            1
        }
        None => {
            eprintln!("usage: verdict-bench --relay SOCKET");
            2
        }
    };
    std::process::exit(code)
}

const LISTENER: Token = Token(0);
/// Every connection's readiness, ignored.
const CONNS: Token = Token(usize::MAX);

/// The connections waiting on one pid, and its pidfd.
struct Waited {
    _pidfd: OwnedFd,
    streams: Vec<UnixStream>,
}

fn relay(socket: &Path) -> Result<()> {
    let mut listener = mio::net::UnixListener::bind(socket)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut waited: HashMap<i32, Waited> = HashMap::new();
    // Answered connections are closed when the next ones arrive, not
    // while their readers are being measured (as verdictd leaves closing
    // to its clients).
    let mut answered: Vec<Waited> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            if event.token() == LISTENER {
                answered.clear();
                accept_all(&listener, poll.registry(), &mut waited)?;
                continue;
            }
            if event.token() == CONNS {
                continue;
            }
            let pid = (event.token().0 - 1) as i32;
            if let Some(done) = waited.remove(&pid) {
                for mut stream in &done.streams {
                    // A reader that went away is not the relay's problem.
                    let _ = stream.write_all(b"{\"event\":\"verdict\",\"exit\":0}\n");
                }
                answered.push(done);
            }
        }
    }
}

/// Accepts every pending connection: reads its pid, says `watching`.
fn accept_all(
    listener: &mio::net::UnixListener,
    registry: &mio::Registry,
    waited: &mut HashMap<i32, Waited>,
) -> Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        // SAFETY: the descriptor was just taken from the mio stream, which
        // gives up its ownership.
        let mut stream = unsafe { UnixStream::from_raw_fd(stream.into_raw_fd()) };
        stream.set_nonblocking(false)?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        if line.is_empty() {
            continue; // a probe: connected and went away
        }
        let pid = line.trim().parse::<i32>().context("pid")?;
        stream.write_all(b"{\"event\":\"watching\"}\n")?;
        // As any daemon must, to see its client go away: the connection
        // is in the loop's epoll, for reading (its events are ignored).
        registry.register(
            &mut mio::unix::SourceFd(&stream.as_raw_fd()),
            CONNS,
            Interest::READABLE,
        )?;
        if let Some(entry) = waited.get_mut(&pid) {
            entry.streams.push(stream);
            continue;
        }
        let raw = rustix::process::Pid::from_raw(pid).context("pid 0")?;
        let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?;
        registry.register(
            &mut mio::unix::SourceFd(&pidfd.as_raw_fd()),
            Token(pid as usize + 1),
            Interest::READABLE,
        )?;
        waited.insert(
            pid,
            Waited {
                _pidfd: pidfd,
                streams: vec![stream],
            },
        );
    }
}

/// The relay process, listening.
pub struct Relay {
    child: Child,
    socket: std::path::PathBuf,
}

impl Relay {
    pub fn start(world: &World) -> Result<Relay> {
        let socket = world.tmp.path().join("relay.sock");
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--relay")
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .context("start the relay")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                bail!("the relay did not start listening");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Relay { child, socket })
    }

    /// A client told of `session`'s exit by the relay, `watching` read.
    pub fn watch(&self, session: &Session) -> Result<Client> {
        let mut client = Client::connect(&self.socket)?;
        client.send(&session.pid().to_string())?;
        if client.recv()?["event"] != "watching" {
            bail!("the relay did not say watching");
        }
        Ok(client)
    }

    /// `per_session` connections on each of `sessions`, every `watching`
    /// read (as the daemon's waits in [`crate::scenarios::open_waits`]).
    pub fn waits(&self, sessions: &[&Session], per_session: usize) -> Result<Vec<UnixStream>> {
        let mut sockets = Vec::with_capacity(sessions.len() * per_session);
        for session in sessions {
            for _ in 0..per_session {
                let mut socket = UnixStream::connect(&self.socket)?;
                socket.write_all(format!("{}\n", session.pid()).as_bytes())?;
                sockets.push(socket);
            }
        }
        for socket in &mut sockets {
            crate::scenarios::read_watching(socket, 1)?;
        }
        Ok(sockets)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's floor for ending `sessions` by `kill`: from the kill to
/// the last of their pidfds readable, polled in the harness (no daemon).
pub fn exits(
    sessions: &mut [Session],
    kill: impl FnOnce(&mut [Session]) -> Result<()>,
) -> Result<Duration> {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let n = sessions.len();
    let mut poll = Poll::new()?;
    let mut fds = Vec::with_capacity(n);
    for (i, session) in sessions.iter().enumerate() {
        let pid = Pid::from_raw(session.pid() as i32).context("pid")?;
        let fd = pidfd_open(pid, PidfdFlags::empty())?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            Token(i),
            Interest::READABLE,
        )?;
        fds.push(fd);
    }
    let t0 = Instant::now();
    kill(sessions)?;
    let mut events = Events::with_capacity(4096);
    let mut seen = vec![false; n];
    let mut remaining = n;
    while remaining > 0 {
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("{remaining} pidfds never became readable");
        }
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for event in events.iter() {
            if !std::mem::replace(&mut seen[event.token().0], true) {
                remaining -= 1;
            }
        }
    }
    Ok(t0.elapsed())
}
