//! A verdict encoded once for many waiters.

use super::{Event, Reply, RequestId, VerdictEvent};

/// One verdict encoded once, for many waiters: only `id` and `elapsed_ms`
/// differ between their lines, so fan-out to thousands of waiters costs a
/// copy each instead of a serialisation each.
#[derive(Debug, Clone)]
pub struct VerdictLines {
    /// `{"v":1,"id":`
    head: Vec<u8>,
    /// From after the id up to and including `"elapsed_ms":`.
    middle: Vec<u8>,
    /// From after the elapsed time to the newline.
    tail: Vec<u8>,
}

impl VerdictLines {
    /// Encodes `event` (its `elapsed_ms` is ignored). `None` only if the
    /// encoding lacks the `elapsed_ms` field, which a `VerdictEvent` never does.
    pub fn new(event: &VerdictEvent) -> Option<VerdictLines> {
        const MARK: u64 = 918_273_645_546_372_819;
        let mut event = event.clone();
        event.elapsed_ms = MARK;
        let line = crate::codec::encode_line(&Reply::new(RequestId::null(), Event::Verdict(event)));
        let head = b"{\"v\":1,\"id\":".to_vec();
        let rest = line.strip_prefix(head.as_slice())?.strip_prefix(b"null")?;
        // Quotes inside JSON strings are escaped, so this cannot match text
        // in a summary or a note.
        let key = b"\"elapsed_ms\":";
        let value = MARK.to_string();
        let needle = [key.as_slice(), value.as_bytes()].concat();
        let at = rest
            .windows(needle.len())
            .position(|w| w == needle.as_slice())?;
        Some(VerdictLines {
            head,
            middle: rest[..at + key.len()].to_vec(),
            tail: rest[at + needle.len()..].to_vec(),
        })
    }

    /// The line (with its newline) for the waiter with `id`.
    pub fn line(&self, id: &RequestId, elapsed_ms: u64) -> Vec<u8> {
        let mut line = Vec::new();
        self.write(id, elapsed_ms, &mut line);
        line
    }

    /// Writes the line for request `id` into `line` (cleared first), so
    /// that one buffer serves every waiter.
    pub fn write(&self, id: &RequestId, elapsed_ms: u64, line: &mut Vec<u8>) {
        use std::io::Write;
        line.clear();
        line.extend_from_slice(&self.head);
        if serde_json::to_writer(&mut *line, id).is_err() {
            line.truncate(self.head.len());
            line.extend_from_slice(b"null");
        }
        line.extend_from_slice(&self.middle);
        // Writing to a Vec cannot fail.
        let _ = write!(line, "{elapsed_ms}");
        line.extend_from_slice(&self.tail);
    }
}
