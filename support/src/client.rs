//! A raw NDJSON connection to the daemon.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;

use crate::DEADLINE;

/// A raw NDJSON connection to the daemon; every read has [`DEADLINE`].
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Wraps a connected stream.
    pub fn from_stream(stream: UnixStream) -> Client {
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one line (a newline is added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send to verdictd");
    }

    /// Sends bytes the daemon may stop reading halfway (an oversized line
    /// it refuses and then closes on): a failed write is not an error.
    pub fn send_may_be_cut(&mut self, bytes: &[u8]) {
        let _ = self.reader.get_mut().write_all(bytes);
    }

    /// The next reply, or `None` at end of stream or on error.
    pub fn try_recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("bad reply {line:?}: {err}")),
            ),
        }
    }

    /// The next reply line as the daemon wrote it (without its newline);
    /// fails the test at end of stream or after the deadline.
    pub fn recv_line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => line.trim_end_matches('\n').to_string(),
            other => panic!("a reply line from verdictd within the deadline: {other:?}"),
        }
    }

    /// The next reply; fails the test at end of stream or after the deadline.
    pub fn recv(&mut self) -> Value {
        self.try_recv()
            .expect("a reply from verdictd within the deadline")
    }

    /// True once the daemon has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.try_recv().is_none()
    }
}

impl Client {
    /// Sends a `wait` for `session` with request id `id`.
    pub fn wait(&mut self, id: impl std::fmt::Display, session: &str, cap_ms: u64) {
        self.send(&format!(
            r#"{{"v":1,"id":"{id}","op":"wait","session":"{session}","cap_ms":{cap_ms}}}"#
        ));
    }

    /// Receives replies until `count` waits have a verdict or error;
    /// `watching` replies are skipped. Returns them by id.
    pub fn verdicts(&mut self, count: usize) -> std::collections::HashMap<String, Value> {
        let mut found = std::collections::HashMap::new();
        while found.len() < count {
            let reply = self.recv();
            if reply["event"] == "verdict" || reply["event"] == "error" {
                let id = reply["id"]
                    .as_str()
                    .map_or_else(|| reply["id"].to_string(), str::to_string);
                found.insert(id, reply);
            }
        }
        found
    }
}
