//! `verdict-bench`: measures verdict against the waiters it replaces, on
//! the same machine, in the same run, on the same events. See BENCHMARKS.md.
//!
//! `verdict-bench [--quick]`; build with `cargo build --release` first.

mod compare;
mod cost;
mod exitpath;
mod floor;
mod hostile;
mod many;
mod peers;
mod scenarios;
mod stats;
mod streaming;
mod top;
mod world;

use anyhow::Result;

/// Sizes of one run.
#[derive(Debug)]
pub struct Plan {
    pub latency_events: usize,
    pub peer_events: usize,
    pub fanout: Vec<usize>,
    pub many_sessions: usize,
    pub cost_waiters: usize,
    pub cost_sessions: usize,
    pub idle_seconds: u64,
    pub client_runs: usize,
    pub stream_sessions: usize,
    pub stream_waiters: usize,
    pub stream_rate: u32,
    pub stream_seconds: u64,
    pub big_sessions: usize,
    pub big_waits: usize,
    pub big_per_connection: usize,
    pub many_call_sessions: usize,
    pub many_call_rounds: usize,
    pub hostile_duration: std::time::Duration,
    pub top_sessions: usize,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--poll") => streaming::poll_child(args[1..].to_vec()),
        Some("--relay") => floor::relay_child(&args[1..]),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let tiny = args.iter().any(|a| a == "--smoke");
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("verdict-bench [--quick | --smoke] [--only single|fanout|peers|cost|streaming|bigfanout|files|many|syscalls|hostile|top]\n\n  --quick  every scenario, fewer events (under 3 minutes)\n  --smoke  tiny sizes, to check the harness works (CI)\n  --only   one scenario");
        return Ok(());
    }
    let plan = if tiny {
        Plan {
            latency_events: 5,
            peer_events: 2,
            fanout: vec![1, 10],
            many_sessions: 10,
            cost_waiters: 100,
            cost_sessions: 10,
            idle_seconds: 1,
            client_runs: 5,
            stream_sessions: 5,
            stream_waiters: 2,
            stream_rate: 50,
            stream_seconds: 1,
            big_sessions: 20,
            big_waits: 100,
            big_per_connection: 5,
            many_call_sessions: 5,
            many_call_rounds: 1,
            hostile_duration: std::time::Duration::from_secs(1),
            top_sessions: 50,
        }
    } else if quick {
        Plan {
            latency_events: 200,
            peer_events: 20,
            fanout: vec![1, 100, 1000, 10_000],
            many_sessions: 1000,
            cost_waiters: 10_000,
            cost_sessions: 1000,
            idle_seconds: 5,
            client_runs: 100,
            stream_sessions: 100,
            stream_waiters: 10,
            stream_rate: 200,
            stream_seconds: 5,
            big_sessions: 10_000,
            big_waits: 100_000,
            big_per_connection: 20,
            many_call_sessions: 100,
            many_call_rounds: 20,
            hostile_duration: std::time::Duration::from_secs(5),
            top_sessions: 10_000,
        }
    } else {
        Plan {
            latency_events: 1000,
            peer_events: 200,
            fanout: vec![1, 100, 1000, 10_000],
            many_sessions: 1000,
            cost_waiters: 10_000,
            cost_sessions: 1000,
            idle_seconds: 10,
            client_runs: 500,
            stream_sessions: 100,
            stream_waiters: 10,
            stream_rate: 200,
            stream_seconds: 10,
            big_sessions: 10_000,
            big_waits: 100_000,
            big_per_connection: 20,
            many_call_sessions: 100,
            many_call_rounds: 20,
            hostile_duration: std::time::Duration::from_secs(10),
            top_sessions: 10_000,
        }
    };
    let raised = verdict_support::raise_fd_limit();
    println!(
        "# verdict-bench ({})\n",
        if tiny {
            "smoke"
        } else if quick {
            "quick"
        } else {
            "full"
        }
    );
    println!(
        "machine: {} cores, kernel {}, open-files limit {raised}",
        cores(),
        kernel()
    );
    // `--only NAME` runs one scenario (to compare two builds side by side).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    if wanted("single") {
        scenarios::single_waiter(&plan)?;
    }
    if wanted("fanout") {
        scenarios::fanout(&plan)?;
    }
    if wanted("peers") {
        compare::peers(&plan)?;
    }
    if wanted("cost") {
        cost::cost(&plan)?;
    }
    if wanted("streaming") {
        streaming::streaming(&plan)?;
    }
    if wanted("bigfanout") {
        scenarios::big_fanout(&plan)?;
    }
    if wanted("files") {
        exitpath::file_events(&plan)?;
    }
    if wanted("many") {
        many::many(&plan)?;
    }
    if wanted("syscalls") {
        exitpath::syscalls(&plan)?;
    }
    if wanted("hostile") {
        hostile::hostile(&plan)?;
    }
    if wanted("top") {
        top::top(&plan)?;
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().into())
}
