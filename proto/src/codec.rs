//! Line framing for the NDJSON protocol: a splitter that works on any byte
//! stream (blocking or not), and a small blocking reader/writer for clients.
//!
//! The splitter never holds more than [`MAX_LINE_BYTES`] of an unfinished
//! line; a longer line is an error, after which the stream is unusable (the
//! daemon replies `line_too_long` and closes the connection).

use std::io::{self, Read, Write};

use serde::Serialize;
use thiserror::Error;

use crate::wire::Reply;

/// Longest line accepted, newline excluded. Requests and replies are a few
/// hundred bytes; a verdict with notes is at most a few KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A line was longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("line longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

/// Buffer capacity an idle splitter keeps; more is freed once it is empty.
const IDLE_CAPACITY: usize = 1024;

/// Splits a byte stream into `\n`-terminated lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line without its `\n` (a trailing `\r` is kept), or
    /// `None` when more bytes are needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                self.scanned = 0;
                if end > MAX_LINE_BYTES {
                    return Some(Err(LineTooLong));
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if self.buf.is_empty() && self.buf.capacity() > IDLE_CAPACITY {
                    // An idle connection holds no buffer from a burst.
                    self.buf = Vec::new();
                }
                Some(Ok(line))
            }
            None if self.buf.len() > MAX_LINE_BYTES => Some(Err(LineTooLong)),
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Errors of the blocking codec.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The stream failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent a line that is too long.
    #[error(transparent)]
    LineTooLong(#[from] LineTooLong),
    /// The peer sent a line that is not a valid message.
    #[error("malformed message from the daemon: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads replies from a blocking stream.
#[derive(Debug)]
pub struct ReplyReader<R> {
    inner: R,
    splitter: LineSplitter,
}

impl<R: Read> ReplyReader<R> {
    /// Wraps a stream.
    pub fn new(inner: R) -> ReplyReader<R> {
        ReplyReader {
            inner,
            splitter: LineSplitter::new(),
        }
    }

    /// The next raw line, or `None` at end of stream.
    pub fn read_line(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(line) = self.splitter.next_line() {
                return Ok(Some(line?));
            }
            match self.inner.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.splitter.push(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The next reply with its raw line, or `None` at end of stream.
    pub fn read_reply(&mut self) -> Result<Option<(Reply, Vec<u8>)>, CodecError> {
        match self.read_line()? {
            None => Ok(None),
            Some(line) => Ok(Some((serde_json::from_slice(&line)?, line))),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

/// Serialises `message` as one line (JSON + `\n`).
pub fn encode_line<T: Serialize + ?Sized>(message: &T) -> Vec<u8> {
    // Serialising our own wire types into a Vec cannot fail: no maps with
    // non-string keys, no I/O.
    let mut line = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

/// Writes `message` as one line and flushes.
pub fn write_line<W: Write, T: Serialize + ?Sized>(out: &mut W, message: &T) -> io::Result<()> {
    out.write_all(&encode_line(message))?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_chunks_and_refuses_long_lines() {
        let mut s = LineSplitter::new();
        s.push(b"{\"a\":");
        assert_eq!(s.next_line(), None);
        s.push(b"1}\n{}\nrest");
        assert_eq!(s.next_line(), Some(Ok(b"{\"a\":1}".to_vec())));
        assert_eq!(s.next_line(), Some(Ok(b"{}".to_vec())));
        assert_eq!(s.next_line(), None);
        assert_eq!(s.pending(), 4);
        s.push(&vec![b'x'; MAX_LINE_BYTES]);
        assert_eq!(s.next_line(), Some(Err(LineTooLong)));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let mut s = LineSplitter::new();
        let mut line = vec![b'x'; MAX_LINE_BYTES];
        line.push(b'\n');
        s.push(&line);
        assert_eq!(
            s.next_line().map(|l| l.map(|l| l.len())),
            Some(Ok(MAX_LINE_BYTES))
        );
    }

    #[test]
    fn reader_reads_replies_and_eof() {
        let data = b"{\"v\":1,\"id\":1,\"event\":\"pong\"}\n".to_vec();
        let mut reader = ReplyReader::new(&data[..]);
        let (reply, raw) = reader.read_reply().expect("read").expect("one reply");
        assert_eq!(reply.event, crate::wire::Event::Pong);
        assert_eq!(raw, data[..data.len() - 1]);
        assert!(reader.read_reply().expect("eof").is_none());
    }
}
