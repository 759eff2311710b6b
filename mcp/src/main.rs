//! `verdict-mcp`: verdict's wait as Model Context Protocol tools, served
//! over stdio, for agents whose shell tool cannot block for minutes.
//!
//! It is a client of verdictd through `verdict-client`: the same socket,
//! auto-start, reconnection and degraded mode as `verdict wait`. Each tool
//! call runs on its own connection in a blocking thread; a call the MCP
//! client cancels (or a client that goes away) stops the wait, and the
//! daemon drops it.

mod answer;
mod cli;
mod schema;
mod tools;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use rmcp::ServiceExt;

/// After stdin ends, how long replies already due may take to go out.
const REPLY_GRACE: Duration = Duration::from_millis(50);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.max_timeout.is_finite() && cli.max_timeout > 0.0 && cli.max_timeout <= 86_400.0) {
        eprintln!(
            "verdict-mcp: --max-timeout {} must be a number of seconds above 0 and at most 86400",
            cli.max_timeout
        );
        return ExitCode::from(2);
    }
    let defaults = verdict_client::Options::default();
    let options = verdict_client::Options {
        socket: cli.socket.unwrap_or(defaults.socket.clone()),
        spawn: !cli.no_spawn,
        fallback: !cli.no_spawn,
        ..defaults
    };
    let server = tools::Server::new(options, Duration::from_secs_f64(cli.max_timeout));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("verdict-mcp: cannot start: {err}");
            return ExitCode::from(1);
        }
    };
    let calls = server.calls();
    let served = runtime.block_on(async {
        // stdin goes through a pipe of ours, so that its end is seen here:
        // then every wait is stopped (the daemon drops them) and the server
        // exits at once, instead of waiting for calls nobody will read.
        let (mut forward, input) = tokio::io::duplex(64 * 1024);
        let (gone_tx, gone) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut forward).await;
            let _ = gone_tx.send(());
        });
        let service = server
            .serve((input, tokio::io::stdout()))
            .await
            .map_err(|err| format!("the MCP session did not start: {err}"))?;
        let waiting = service.waiting();
        tokio::pin!(waiting);
        tokio::select! {
            served = &mut waiting => served
                .map(drop)
                .map_err(|err| format!("the MCP session failed: {err}")),
            _ = gone => {
                calls.stop_all();
                // Replies to what was read before the end (a client that
                // half-closes after its last request) still go out.
                let _ = tokio::time::timeout(REPLY_GRACE, &mut waiting).await;
                Ok(())
            }
        }
    });
    // Stopped waits return at once; nothing else needs the runtime.
    runtime.shutdown_timeout(Duration::from_millis(50));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("verdict-mcp: {message}");
            ExitCode::from(1)
        }
    }
}
