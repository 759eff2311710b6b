//! The clients' side of the loop: accept connections (peer credentials,
//! the connection limit), read their lines, answer them, and close the
//! ones that are done.

use std::io;

use mio::net::UnixStream;
use mio::{Interest, Token};
use verdict_proto::codec::encode_line;
use verdict_proto::wire::RequestId;
use verdict_proto::wire::{parse_request, ErrorCode, Event, Reply, Request};

use super::{Server, ACCEPT_RETRY};
use crate::conn::{Conn, Input, State};
use crate::timers::Timer;

/// Connections accepted (or refused) per turn of the loop: a client
/// connecting in a loop cannot keep the others waiting.
const MAX_ACCEPTS_PER_TURN: usize = 256;

impl Server {
    pub(super) fn accept(&mut self) {
        for accepted in 0.. {
            if accepted == MAX_ACCEPTS_PER_TURN {
                // More may be queued: taken on the next turn, after the
                // clients already connected have been served.
                self.backlog.accept = true;
                return;
            }
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return self.accept_failed(&err),
            };
            self.accepting_again();
            let Some(pid) = self.our_user(&stream) else {
                continue;
            };
            if self.core.conns.len() >= self.core.config.max_connections {
                refuse_busy(&mut stream, self.core.config.max_connections);
                continue;
            }
            let token = Token(self.next_conn);
            self.next_conn += 1;
            let registry = self.core.poll.registry();
            if let Err(err) = registry.register(&mut stream, token, Interest::READABLE) {
                log::error!("cannot register a connection: {err}");
                continue;
            }
            let mut conn = Conn::new(stream);
            conn.peer_pid = pid;
            self.core.conns.insert(token, conn);
        }
    }

    /// EMFILE and friends: the pending connections stay queued, but the
    /// edge-triggered listener will not say so again. Retry on a timer
    /// while this lasts.
    fn accept_failed(&mut self, err: &io::Error) {
        if self.accept_retry.is_some() {
            return;
        }
        if !self.accept_failing {
            log::error!("accept failed: {err}; retrying every {ACCEPT_RETRY:?} until it works");
            self.accept_failing = true;
        }
        self.accept_retry = Some(self.core.timers.add(ACCEPT_RETRY, Timer::Accept));
    }

    fn accepting_again(&mut self) {
        if let Some(timer) = self.accept_retry.take() {
            self.core.timers.cancel(timer);
        }
        if std::mem::take(&mut self.accept_failing) {
            log::info!("accepting connections again");
        }
    }

    /// Only the daemon's own user may connect: `Some(its pid, if known)`.
    fn our_user(&self, stream: &mio::net::UnixStream) -> Option<Option<i32>> {
        match crate::peer::peer(stream) {
            Ok(peer) if peer.uid == self.uid => Some(peer.pid),
            Ok(peer) => {
                let pid = peer.pid.map_or_else(|| "?".into(), |pid| pid.to_string());
                log::warn!("refused a connection from uid {} (pid {pid})", peer.uid);
                None
            }
            Err(err) => {
                log::warn!("refused a connection without peer credentials: {err}");
                None
            }
        }
    }

    pub(super) fn on_readable(&mut self, token: Token, hung_up: bool) {
        let Some(conn) = self.core.conns.get_mut(token) else {
            return;
        };
        if conn.state() != State::Open {
            if hung_up {
                self.close(token);
            }
            return;
        }
        if conn.backlogged() {
            // Input is left from an earlier turn: it is served from the
            // backlog, once a turn, whatever the poll says meanwhile.
            return;
        }
        let batch = conn.read_some();
        if batch.more {
            conn.set_backlogged(true);
            self.backlog.conns.push(token);
        }
        let closed = batch.closed;
        for input in batch.inputs {
            match input {
                Input::Line(line) => self.handle_line(token, &line),
                Input::TooLong => {
                    let message = format!(
                        "request line longer than {} bytes; closing the connection",
                        verdict_proto::codec::MAX_LINE_BYTES
                    );
                    self.reply(
                        token,
                        RequestId::null(),
                        Event::Error {
                            code: ErrorCode::LineTooLong,
                            message,
                        },
                    );
                    self.core.conns.stop_reading(token, State::Closing);
                }
            }
        }
        if closed && hung_up {
            self.close(token);
        } else if closed {
            self.core.conns.stop_reading(token, State::HalfClosed);
        }
    }

    /// Serves a connection that had input left at the end of a turn.
    pub(super) fn on_backlog(&mut self, token: Token) {
        if let Some(conn) = self.core.conns.get_mut(token) {
            conn.set_backlogged(false);
            self.on_readable(token, false);
        }
    }

    fn handle_line(&mut self, token: Token, line: &[u8]) {
        let (id, request) = match parse_request(line) {
            Ok(parsed) => parsed,
            Err(err) => {
                self.reply(
                    token,
                    err.id,
                    Event::Error {
                        code: err.code,
                        message: err.message,
                    },
                );
                return;
            }
        };
        let event = match request {
            Request::Ping => Event::Pong,
            Request::Status => Event::Status(self.counters()),
            Request::Cancel { target } => {
                if self.registry.cancel(&mut self.core.ctx(), token, &target) {
                    Event::Cancelled { target }
                } else {
                    let message = format!(
                        "no wait or subscription with id {target} is in force on this connection"
                    );
                    Event::Error {
                        code: ErrorCode::BadRequest,
                        message,
                    }
                }
            }
            Request::Subscribe { under } => {
                match self
                    .registry
                    .subscribe(&mut self.core.ctx(), token, id.clone(), &under)
                {
                    Ok(()) => return,
                    Err(refusal) => refusal.event(),
                }
            }
            Request::Wait {
                session,
                cap_ms,
                cwd,
            } => {
                match self.registry.wait(
                    &mut self.core.ctx(),
                    token,
                    id.clone(),
                    &session,
                    cap_ms,
                    cwd.as_deref(),
                ) {
                    Ok(()) => return,
                    Err(refusal) => refusal.event(),
                }
            }
        };
        self.reply(token, id, event);
    }

    fn reply(&mut self, token: Token, id: RequestId, event: Event) {
        let line = encode_line(&Reply::new(id, crate::registry::bounded(event)));
        self.core.conns.send(token, &line);
    }

    /// Closes the connections that are broken, or done: closing after
    /// their last output, or half-closed with no wait left.
    pub(super) fn follow_up(&mut self) {
        for token in self.core.conns.end_round(self.core.poll.registry()) {
            let Some((state, output_left)) = self.core.conns.state(token) else {
                continue;
            };
            let done = match state {
                State::Open => false,
                State::Broken => true,
                State::Closing => !output_left,
                State::HalfClosed => !output_left && self.registry.conn_waits(token) == 0,
            };
            if done {
                self.close(token);
            }
        }
    }

    pub(super) fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.core.conns.remove(token) {
            let _ = self.core.poll.registry().deregister(&mut conn.stream);
            discard_input(&mut conn.stream);
            self.registry.drop_conn(&mut self.core.ctx(), token);
        }
    }
}

/// Closing a Unix socket with unread input makes the peer's reads fail
/// with ECONNRESET, losing the replies it has not read yet. Stop the peer
/// from sending more, then drop what it sent (bounded), so it reads our
/// last replies and a clean end of stream.
fn discard_input(stream: &mut UnixStream) {
    /// Bytes thrown away at most; past it the peer may see a reset.
    const MAX_DISCARD: usize = 4 * 1024 * 1024;
    let _ = stream.shutdown(std::net::Shutdown::Read);
    let mut buf = [0u8; 16 * 1024];
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        match io::Read::read(stream, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
}

fn refuse_busy(stream: &mut UnixStream, max: usize) {
    use std::io::Write;
    let message = format!("verdictd is at its limit of {max} connections; try again later");
    let line = encode_line(&Reply::new(
        RequestId::null(),
        Event::Error {
            code: ErrorCode::Busy,
            message,
        },
    ));
    let _ = stream.write(&line);
    log::warn!("refused a connection: {max} connections open");
}
