//! The tools: `wait` and `status`, their parameters and their checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, Json, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use verdict_client::{Cap, Client, Exit, Mode, Options, Stopper, Update};

use crate::answer::{SessionAnswer, WaitResult};

/// Sessions one `wait` call may name.
pub const MAX_SESSIONS: usize = 64;

/// The server: how to reach verdictd, and the longest wait.
#[derive(Debug, Clone)]
pub struct Server {
    options: Options,
    max_timeout: Duration,
    tool_router: ToolRouter<Server>,
    calls: Arc<Calls>,
}

/// The `wait` calls in flight, so that all of them can be stopped at once
/// (the client went away).
#[derive(Debug, Default)]
pub struct Calls {
    next: AtomicU64,
    stoppers: Mutex<HashMap<u64, Stopper>>,
}

impl Calls {
    fn add(&self, stopper: Stopper) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, stopper);
        key
    }

    fn remove(&self, key: u64) {
        self.lock().remove(&key);
    }

    /// Stops every wait in flight: each drops its waits at the daemon.
    pub fn stop_all(&self) {
        for stopper in self.lock().values() {
            stopper.stop();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Stopper>> {
        self.stoppers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `wait`'s parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// The sessions to wait for: 1 to 64 session ids, unique id prefixes,
    /// or session directories (absolute paths).
    pub sessions: Vec<String>,
    /// `all` (the default): return when every session has ended; `any`:
    /// return as soon as one has ended.
    #[serde(default)]
    pub mode: WaitMode,
    /// Return after this many seconds at most, even if sessions still run
    /// (they are then reported `alive`: call again). Default and maximum:
    /// the server's limit (50 s unless configured).
    pub timeout_seconds: Option<f64>,
}

/// When a `wait` call returns.
#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitMode {
    /// When every session has ended.
    #[default]
    All,
    /// When the first session has ended.
    Any,
}

/// What `status` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    /// The daemon's socket.
    pub socket: String,
    /// The daemon's version.
    pub version: String,
    /// The daemon's pid.
    pub pid: u32,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Sessions waited for.
    pub sessions: u64,
    /// Waits in flight.
    pub waiters: u64,
    /// Client connections.
    pub connections: u64,
    /// Verdicts sent since it started.
    pub verdicts_sent: u64,
    /// Subscriptions (`verdict events`).
    pub subscribers: u64,
    /// The sessions waited for (at most 100).
    pub watched: Vec<Watched>,
}

/// One session waited for.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Watched {
    /// Its id.
    pub session: String,
    /// Its directory.
    pub dir: String,
    /// Waits on it.
    pub waiters: u64,
}

/// Stops a wait when the call's future is dropped (the client went away),
/// and takes it off the calls in flight.
struct StopOnDrop(Stopper, Arc<Calls>, u64);

impl StopOnDrop {
    fn new(calls: &Arc<Calls>) -> StopOnDrop {
        let stopper = Stopper::new();
        let key = calls.add(stopper.clone());
        StopOnDrop(stopper, Arc::clone(calls), key)
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
        self.1.remove(self.2);
    }
}

#[tool_router]
impl Server {
    /// A server that reaches verdictd with `options` and lets a call wait
    /// `max_timeout` at most.
    pub fn new(options: Options, max_timeout: Duration) -> Server {
        let mut tool_router = Server::tool_router();
        for route in tool_router.map.values_mut() {
            crate::schema::publish(&mut route.attr, max_timeout.as_secs_f64());
        }
        Server {
            options,
            max_timeout,
            tool_router,
            calls: Arc::default(),
        }
    }

    /// The calls in flight.
    pub fn calls(&self) -> Arc<Calls> {
        Arc::clone(&self.calls)
    }

    /// Blocks until sub-agent sessions end, and says how each ended.
    #[tool(
        description = "Wait for agent sub-sessions (cli-sub-agent / csa sessions) to end, without polling, \
and say how each ended: status, exit codes, summary and the end of its output. Returns as soon as \
every session has ended (mode \"all\") or the first one has (mode \"any\"), or at timeout_seconds \
with the sessions still running marked \"alive\" and listed in still_running: that is healthy, call \
wait again with them. Use this instead of sleeping or polling in a shell."
    )]
    async fn wait(
        &self,
        Parameters(params): Parameters<WaitParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<WaitResult>, String> {
        let (sessions, timeout) = self.check(&params)?;
        let mode = match params.mode {
            WaitMode::All => Mode::All,
            WaitMode::Any => Mode::Any,
        };
        let guard = StopOnDrop::new(&self.calls);
        let (options, stopper) = (self.options.clone(), guard.0.clone());
        let call = tokio::task::spawn_blocking(move || {
            run_wait(options, sessions, mode, timeout, stopper)
        });
        tokio::pin!(call);
        let joined = tokio::select! {
            joined = &mut call => joined,
            () = context.ct.cancelled() => {
                guard.0.stop();
                call.await
            }
        };
        joined.map_err(|err| format!("the wait failed: {err}"))?
    }

    /// The daemon's counters and the sessions it waits for.
    #[tool(
        description = "Show verdictd's counters (waits in flight, connections, verdicts sent) and the \
sessions it is waiting for."
    )]
    async fn status(&self) -> Result<Json<StatusResult>, String> {
        let options = Options {
            spawn: false,
            fallback: false,
            ..self.options.clone()
        };
        let socket = options.socket.display().to_string();
        let status = tokio::task::spawn_blocking(move || {
            Client::connect(options).and_then(|mut client| client.status())
        })
        .await
        .map_err(|err| format!("status failed: {err}"))?
        .map_err(|err| err.to_string())?;
        let counters = status.counters;
        Ok(Json(StatusResult {
            socket,
            version: counters.version,
            pid: counters.pid,
            uptime_ms: counters.uptime_ms,
            sessions: counters.sessions,
            waiters: counters.waiters,
            connections: counters.connections,
            verdicts_sent: counters.verdicts_sent,
            subscribers: counters.subscribers,
            watched: counters
                .watched
                .into_iter()
                .map(|w| Watched {
                    session: w.session,
                    dir: w.dir,
                    waiters: w.waiters,
                })
                .collect(),
        }))
    }
}

impl Server {
    /// The sessions (as given, as sent) and the timeout, or what is wrong.
    fn check(&self, params: &WaitParams) -> Result<(Vec<(String, String)>, Duration), String> {
        let max = self.max_timeout.as_secs_f64();
        if params.sessions.is_empty() {
            return Err(format!(
                "sessions is empty: give 1 to {MAX_SESSIONS} session ids or directories"
            ));
        }
        if params.sessions.len() > MAX_SESSIONS {
            return Err(format!(
                "too many sessions ({}): give at most {MAX_SESSIONS} per call, and split the rest \
                 across calls",
                params.sessions.len()
            ));
        }
        let timeout = params.timeout_seconds.unwrap_or(max);
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= max) {
            return Err(format!(
                "timeout_seconds {timeout} is out of range: give a number of seconds above 0 and \
                 at most {max} (this server's limit)"
            ));
        }
        let sessions = params
            .sessions
            .iter()
            .map(|given| Ok((given.clone(), verdict_client::session_arg(given)?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok((sessions, Duration::from_secs_f64(timeout)))
    }
}

/// The blocking part of `wait`: one connection, every session at once.
fn run_wait(
    options: Options,
    sessions: Vec<(String, String)>,
    mode: Mode,
    timeout: Duration,
    stopper: Stopper,
) -> Result<Json<WaitResult>, String> {
    let mut client = Client::connect(options).map_err(|err| err.to_string())?;
    let args: Vec<&str> = sessions.iter().map(|(_, arg)| arg.as_str()).collect();
    let mut answers: Vec<SessionAnswer> = sessions
        .iter()
        .map(|(given, _)| SessionAnswer::pending(given))
        .collect();
    let mut waits = client.wait_many(&args, mode, Cap::After(timeout));
    waits.stop_with(stopper);
    for update in waits.by_ref() {
        match update.map_err(|err| err.to_string())? {
            Update::Verdict { index, verdict } => {
                answers[index] = SessionAnswer::answered(&sessions[index].0, &verdict);
            }
            // Bad input (an unknown or ambiguous session): say so, wait for nothing.
            Update::Refused { index, refusal } if refusal.exit() == Exit::Usage => {
                return Err(format!(
                    "session {:?}: {}",
                    sessions[index].0, refusal.message
                ));
            }
            Update::Refused { index, refusal } => {
                answers[index] = SessionAnswer::refused(&sessions[index].0, &refusal);
            }
            _ => {}
        }
    }
    let exit_code = waits.exit().code();
    Ok(Json(summarize(answers, mode, exit_code, timeout)))
}

/// The call's answer from its sessions' answers.
fn summarize(
    sessions: Vec<SessionAnswer>,
    mode: Mode,
    exit_code: i32,
    timeout: Duration,
) -> WaitResult {
    let ended = |a: &SessionAnswer| matches!(a.outcome.as_str(), "completed" | "error" | "timeout");
    let done = match mode {
        Mode::All => sessions.iter().all(ended),
        Mode::Any => sessions.iter().any(|a| a.outcome == "completed"),
    };
    let still_running: Vec<String> = sessions
        .iter()
        .filter(|a| matches!(a.outcome.as_str(), "alive" | "pending"))
        .map(|a| a.id.clone().unwrap_or_else(|| a.session.clone()))
        .collect();
    let next = if still_running.is_empty() {
        "Every session has an answer: read each one's status and output.".to_string()
    } else if done {
        format!(
            "A session ended; {} others were not waited for: call wait again with still_running \
             to follow them.",
            still_running.len()
        )
    } else {
        format!(
            "{} session(s) still running after {:.0}s, which is healthy: call wait again with \
             sessions = still_running.",
            still_running.len(),
            timeout.as_secs_f64()
        )
    };
    WaitResult {
        done,
        exit_code,
        sessions,
        still_running,
        next,
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("verdict-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
            "verdict tells you how agent sub-sessions ended. Call `wait` with the session ids you \
             launched instead of sleeping or polling; if it returns sessions in still_running, \
             call it again with them.",
        )
    }
}
