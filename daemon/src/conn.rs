//! One client connection: a non-blocking stream, the line splitter for what
//! it sends, and a bounded buffer for what we have not yet written to it.
//!
//! A client that stops reading its replies is dropped once its buffer
//! passes [`MAX_PENDING_OUTPUT`], so it can never make the daemon grow or
//! delay anyone else. This module knows nothing of requests.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use mio::net::UnixStream;
use mio::{Interest, Token};
use verdict_proto::codec::{LineSplitter, LineTooLong};

/// Bytes of replies a connection may have unwritten before it is dropped:
/// thousands of verdicts, far more than a reading client ever lags.
pub const MAX_PENDING_OUTPUT: usize = 1024 * 1024;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Requests handled for one connection in one turn of the loop: enough
/// for any real client's burst, few enough that a flooding client delays
/// the others by microseconds, not seconds.
pub const MAX_LINES_PER_TURN: usize = 16;
/// Bytes read from one connection in one turn of the loop (with
/// [`MAX_LINES_PER_TURN`], the most input ever held for a connection is
/// this plus one unfinished line).
pub const MAX_BYTES_PER_TURN: usize = 4 * READ_CHUNK;
/// Output buffer capacity kept once everything is written.
const IDLE_OUTPUT_CAPACITY: usize = 1024;

/// What reading produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A complete line (trailing `\r` removed).
    Line(Vec<u8>),
    /// The client sent a line longer than the limit.
    TooLong,
}

/// What one turn's read of a connection produced.
#[derive(Debug, Default)]
pub struct Batch {
    /// Lines received, in order.
    pub inputs: Vec<Input>,
    /// The peer closed its side (or the read failed).
    pub closed: bool,
    /// The budget ran out with input still to read: serve it again next turn.
    pub more: bool,
}

/// Where a connection stands. Only [`Conns`] moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reading requests and answering them.
    Open,
    /// The peer shut down its sending side (`printf … | socat`): serve the
    /// waits in flight, then close.
    HalfClosed,
    /// Close once the output is flushed (after `line_too_long`).
    Closing,
    /// Writing failed or the client fell too far behind: close it now.
    Broken,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    /// The stream, registered with the poll.
    pub stream: UnixStream,
    /// The client's pid (`SO_PEERCRED`), where known.
    pub peer_pid: Option<i32>,
    splitter: LineSplitter,
    output: Vec<u8>,
    written: usize,
    /// Registered for WRITABLE as well as READABLE.
    wants_write: bool,
    state: State,
    /// The round of the event loop in which it was last written to.
    last_round: u64,
    /// Input was left unread at the end of a turn: the server serves it
    /// from its backlog, not from poll events, so it is served once a turn.
    backlogged: bool,
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            peer_pid: None,
            splitter: LineSplitter::new(),
            output: Vec::new(),
            written: 0,
            wants_write: false,
            state: State::Open,
            last_round: 0,
            backlogged: false,
        }
    }

    /// Input is left for the next turn (see [`Conn::read_some`]).
    pub fn backlogged(&self) -> bool {
        self.backlogged
    }

    /// Marks input as left for the next turn, or served.
    pub fn set_backlogged(&mut self, backlogged: bool) {
        self.backlogged = backlogged;
    }

    /// Reads what the client sent, within one turn's budget
    /// ([`MAX_LINES_PER_TURN`], [`MAX_BYTES_PER_TURN`]): a client that keeps
    /// its socket full gets the same share of the loop as any other, and
    /// never more than one turn's input is held for it. The poll is
    /// edge-triggered, so a connection that still has input when the
    /// budget runs out says so ([`Batch::more`]) and the server serves it
    /// again on the next turn.
    pub fn read_some(&mut self) -> Batch {
        let mut batch = Batch::default();
        let mut read = 0;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            while let Some(line) = self.splitter.next_line() {
                match line {
                    Ok(mut line) => {
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        if !line.is_empty() {
                            batch.inputs.push(Input::Line(line));
                        }
                    }
                    Err(LineTooLong) => {
                        batch.inputs.push(Input::TooLong);
                        return batch;
                    }
                }
                if batch.inputs.len() >= MAX_LINES_PER_TURN {
                    batch.more = true;
                    return batch;
                }
            }
            if read >= MAX_BYTES_PER_TURN {
                batch.more = true;
                return batch;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    batch.closed = true;
                    return batch;
                }
                Ok(n) => {
                    read += n;
                    self.splitter.push(&chunk[..n]);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return batch,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    batch.closed = true;
                    return batch;
                }
            }
        }
    }

    /// Writes `line` now if nothing is queued before it (no copy), and
    /// queues what the socket does not take. `Err` means the connection is
    /// dead or too far behind to keep.
    fn write_now(&mut self, line: &[u8]) -> io::Result<()> {
        let written = if self.has_output() {
            0
        } else {
            write_available(&mut self.stream, line)?
        };
        if self.queue(&line[written..]) {
            Ok(())
        } else {
            Err(io::ErrorKind::OutOfMemory.into())
        }
    }

    /// Queues a reply; false if the client is too far behind to keep.
    pub fn queue(&mut self, line: &[u8]) -> bool {
        if self.output.len() - self.written + line.len() > MAX_PENDING_OUTPUT {
            return false;
        }
        self.output.extend_from_slice(line);
        true
    }

    /// Writes what it can; `Err` means the connection is dead.
    pub fn flush(&mut self) -> io::Result<()> {
        self.written += write_available(&mut self.stream, &self.output[self.written..])?;
        if self.written == self.output.len() {
            if self.output.capacity() > IDLE_OUTPUT_CAPACITY {
                // Many connections sit idle between bursts: keep none.
                self.output = Vec::new();
            } else {
                self.output.clear();
            }
            self.written = 0;
        } else if self.written > MAX_PENDING_OUTPUT / 2 {
            self.output.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }

    /// Unwritten output remains.
    pub fn has_output(&self) -> bool {
        self.written < self.output.len()
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Moves to `state`; a broken connection stays broken.
    fn set(&mut self, state: State) {
        if self.state != State::Broken {
            self.state = state;
        }
    }

    fn broken(&self) -> bool {
        self.state == State::Broken
    }
}

/// Writes as much of `bytes` as the non-blocking socket takes now; returns
/// how much that was. `Err` means the connection is dead.
fn write_available(stream: &mut UnixStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}

/// Every connection, and the ones the server must look at after this round
/// (broken, or closing once their output or their waits are done).
#[derive(Debug)]
pub struct Conns {
    map: HashMap<Token, Conn>,
    followup: Vec<Token>,
    /// Rounds of the event loop so far (starts at 1: a new connection's
    /// `last_round` of 0 is never the current one).
    round: u64,
}

impl Default for Conns {
    fn default() -> Conns {
        Conns {
            map: HashMap::new(),
            followup: Vec::new(),
            round: 1,
        }
    }
}

impl Conns {
    /// Connections open now.
    /// Every connection's token and client pid.
    pub fn peers(&self) -> impl Iterator<Item = (Token, Option<i32>)> + '_ {
        self.map.iter().map(|(token, conn)| (*token, conn.peer_pid))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No connection is open.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Takes in a new connection.
    pub fn insert(&mut self, token: Token, conn: Conn) {
        self.map.insert(token, conn);
    }

    /// The connection, if open.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut Conn> {
        self.map.get_mut(&token)
    }

    /// Where connection `token` stands, and whether it has output left.
    pub fn state(&self, token: Token) -> Option<(State, bool)> {
        self.map
            .get(&token)
            .map(|conn| (conn.state, conn.has_output()))
    }

    /// Takes connection `token` out (to close it).
    pub fn remove(&mut self, token: Token) -> Option<Conn> {
        self.map.remove(&token)
    }

    /// Moves `token` to `state` (`HalfClosed` or `Closing`), and looks at
    /// it again after this round.
    pub fn stop_reading(&mut self, token: Token, state: State) {
        if let Some(conn) = self.map.get_mut(&token) {
            conn.set(state);
        }
        self.followup.push(token);
    }

    /// Sends `line`. The first line a connection gets in a round is
    /// written at once (without a copy when nothing is queued), so that
    /// with thousands of waiters the first are reading while the last are
    /// still being written; further lines in the same round (a client
    /// pipelining requests) are queued and go out together at the end of
    /// the round, in one write.
    pub fn send(&mut self, token: Token, line: &[u8]) {
        let round = self.round;
        let Some(conn) = self.map.get_mut(&token) else {
            return;
        };
        if conn.broken() {
            return;
        }
        let sent = if conn.last_round == round {
            conn.queue(line).then_some(()).ok_or(())
        } else {
            conn.last_round = round;
            conn.write_now(line).map_err(drop)
        };
        if sent.is_err() {
            log::warn!("dropping a client that does not read its replies");
            conn.set(State::Broken);
        }
        if conn.has_output() || conn.state != State::Open {
            self.followup.push(token);
        }
    }

    /// Writes pending output and keeps WRITABLE interest only while some
    /// remains.
    pub fn write(&mut self, poll: &mio::Registry, token: Token) {
        let Some(conn) = self.map.get_mut(&token) else {
            return;
        };
        if !conn.broken() && conn.flush().is_err() {
            conn.set(State::Broken);
        }
        let wants_write = conn.has_output();
        if !conn.broken() && wants_write != conn.wants_write {
            let interest = if wants_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            match poll.reregister(&mut conn.stream, token, interest) {
                Ok(()) => conn.wants_write = wants_write,
                Err(_) => conn.set(State::Broken),
            }
        }
        if conn.state != State::Open {
            self.followup.push(token);
        }
    }

    /// Ends the round: writes what was batched, and returns the
    /// connections to look at, each once.
    pub fn end_round(&mut self, poll: &mio::Registry) -> Vec<Token> {
        self.round += 1;
        let mut tokens = std::mem::take(&mut self.followup);
        tokens.sort_unstable();
        tokens.dedup();
        for &token in &tokens {
            if self.map.get(&token).is_some_and(Conn::has_output) {
                self.write(poll, token);
            }
        }
        // `write` may have queued tokens again; they are in `tokens` already.
        self.followup.clear();
        tokens
    }
}

/// The registry's replies, written to their connections at once.
impl crate::registry::Sink for Conns {
    fn send(&mut self, conn: Token, line: &[u8]) {
        Conns::send(self, conn, line);
    }
}
