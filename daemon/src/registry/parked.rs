//! Waits by id, parked while the lookup thread ([`crate::lookup`]) finds
//! their directory: queued as a job, kept in the registry's `parked` map
//! and in `by_conn` (so cancels, limits and closing connections see them),
//! and started, or refused, when the answer arrives. Nothing here looks
//! anything up.

use std::sync::Arc;

use mio::Token;
use verdict_proto::wire::RequestId;

use super::{bounded, push, Ctx, IdKey, Refusal, Registry};
use crate::lookup::Job;

/// A wait by id waiting for its lookup.
#[derive(Debug)]
pub(super) struct Parked {
    pub(super) conn: Token,
    pub(super) id: RequestId,
    pub(super) id_key: IdKey,
    pub(super) cap_ms: Option<u64>,
}

impl Registry {
    /// Parks a wait by id while the lookup thread finds its directory.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn park(
        &mut self,
        ctx: &mut Ctx,
        conn: Token,
        id: RequestId,
        id_key: IdKey,
        session: &str,
        cap_ms: Option<u64>,
        cwd: Option<&str>,
    ) -> Result<(), Refusal> {
        let ticket = self.next_key();
        let job = Job {
            ticket,
            session: session.to_string(),
            cwd: cwd.map(str::to_string),
            roots: Arc::from(ctx.config.roots.as_slice()),
        };
        if !ctx.lookups.ask(job) {
            return Err(Refusal::LookupsFull);
        }
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(id_key.clone(), ticket);
        self.parked.insert(
            ticket,
            Parked {
                conn,
                id,
                id_key,
                cap_ms,
            },
        );
        Ok(())
    }

    /// The lookup thread answered: the parked waits go on (or are refused).
    pub fn looked_up(&mut self, ctx: &mut Ctx) {
        for answer in ctx.lookups.answers() {
            // Cancelled, or its connection closed, meanwhile.
            let Some(parked) = self.parked.remove(&answer.ticket) else {
                continue;
            };
            let Parked {
                conn,
                id,
                id_key,
                cap_ms,
            } = parked;
            self.forget_id(conn, &id_key);
            let started = answer.result.map_err(Refusal::from).and_then(|resolved| {
                self.start_wait(ctx, conn, id.clone(), id_key, resolved, cap_ms)
            });
            if let Err(refusal) = started {
                push(ctx.out, conn, &id, bounded(refusal.event()));
            }
        }
    }

    /// Forgets the wait (or parked wait) `id_key` of `conn` in `by_conn`.
    pub(super) fn forget_id(&mut self, conn: Token, id_key: &IdKey) {
        if let Some(waits) = self.by_conn.get_mut(&conn) {
            waits.remove(id_key);
            if waits.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }
}
