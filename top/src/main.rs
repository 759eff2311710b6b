//! `verdict top` (run as `verdict-top`, or `verdict top`): every session
//! under verdictd's roots at a glance, one row each, grouped by project,
//! newest first; running ones with their pid and elapsed time, ended ones
//! with status, exit code and when. Sessions that had ended before it
//! started come from a bounded scan of their files (the newest few per
//! project, in this process); everything after from the daemon's event
//! stream. The daemon's figures are read once per connection.

mod model;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use clap::Parser;
use verdict_client::subscribe::{Notice, Subscription};
use verdict_client::{Client, Options};

use crate::model::{cells, Daemon, Model, HEADINGS};

#[derive(Debug, Parser)]
#[command(
    name = "verdict-top",
    version,
    about = "Every agent session under verdictd's roots at a glance, live",
    after_help = "\
Keys: Up/Down or k/j move, Enter shows the end of the session's stdout.log, \
f shows failed sessions only, / filters by id or project, q quits."
)]
pub struct Cli {
    /// Print the table once and exit (for scripts and tests).
    #[arg(long)]
    once: bool,
    /// With --once: one JSON object per session, a line each.
    #[arg(long, requires = "once")]
    json: bool,
    /// Sessions listed per project from the first scan.
    #[arg(long, value_name = "N", default_value_t = 20)]
    per_project: usize,
    /// The daemon's socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

/// What the event thread hands the view.
#[derive(Debug)]
pub enum Msg {
    Notice(Notice),
    Scanned(Vec<verdict_client::sessions::Row>),
    Daemon(Daemon),
    Lost(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| Options::default().socket);
    let (tx, rx) = mpsc::channel();
    follow(socket.clone(), cli.per_project, tx);
    if cli.once {
        return once(&rx, cli.json);
    }
    match tui::run(&rx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("verdict top: {err}");
            ExitCode::from(1)
        }
    }
}

/// The event stream on a thread of its own: on each subscription, the
/// daemon's figures and a scan of its roots, then every start and end.
fn follow(socket: PathBuf, per_project: usize, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        for line in Subscription::new(socket.clone(), Vec::new(), false) {
            let line = match line {
                Ok(line) => line,
                Err(err) => {
                    let _ = tx.send(Msg::Lost(err.to_string()));
                    return;
                }
            };
            if let Notice::Subscribed { roots, again, .. } = &line.notice {
                let mut daemon = daemon(&socket);
                daemon.reconnected = *again;
                let _ = tx.send(Msg::Daemon(daemon));
                let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
                let (rows, _) = verdict_client::sessions::scan(&roots, per_project);
                let _ = tx.send(Msg::Scanned(rows));
            }
            if tx.send(Msg::Notice(line.notice)).is_err() {
                return;
            }
        }
    });
}

fn daemon(socket: &std::path::Path) -> Daemon {
    let options = Options {
        socket: socket.to_path_buf(),
        spawn: false,
        fallback: false,
        ..Options::default()
    };
    Client::connect(options)
        .and_then(|mut client| client.status())
        .map(|status| Daemon {
            version: status.counters.version,
            pid: status.counters.pid,
            waiters: status.counters.waiters,
            connections: status.counters.connections,
            reconnected: false,
        })
        .unwrap_or_default()
}

/// Applies one message to the model; false when the stream is lost.
pub fn apply(model: &mut Model, msg: Msg) -> Result<(), String> {
    match msg {
        Msg::Notice(Notice::Subscribed { roots, .. }) => {
            model.roots = roots.into_iter().map(PathBuf::from).collect();
        }
        Msg::Notice(Notice::Started(started)) => model.started(&started),
        Msg::Notice(Notice::Ended(verdict)) => model.ended(&verdict),
        Msg::Scanned(rows) => model.scanned(rows),
        Msg::Daemon(daemon) => model.daemon = daemon,
        Msg::Lost(err) => return Err(err),
    }
    Ok(())
}

/// `--once`: the table (or JSON lines) as it stands after the first scan.
fn once(rx: &mpsc::Receiver<Msg>, json: bool) -> ExitCode {
    let mut model = Model::default();
    // The subscription's reply, the figures and the scan come first.
    let mut scanned = false;
    while !scanned {
        match rx.recv() {
            Ok(msg) => {
                scanned = matches!(msg, Msg::Scanned(_));
                if let Err(err) = apply(&mut model, msg) {
                    eprintln!("verdict top: {err}");
                    return ExitCode::from(3);
                }
            }
            Err(_) => return ExitCode::from(3),
        }
    }
    let rows = model.shown(&model::Filter::default());
    if json {
        for row in rows {
            let [project, _, state, _, _, _, _, _, _, _] = cells(row);
            let ended = row.ended.map(|at| {
                let secs = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!("{}Z", verdict_client::csa1142::utc_seconds(secs))
            });
            let line = serde_json::json!({
                "id": row.id,
                "project": project,
                "dir": row.dir,
                "state": state,
                "pid": row.pid,
                "alive": row.alive,
                "elapsed_s": model::elapsed(row).map(|d| d.as_secs()),
                "status": row.status,
                "exit_code": row.exit_code,
                "wait_exit": row.wait_exit,
                "synthetic": row.synthetic,
                "ended": ended,
            });
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    println!("{}", model.header());
    let table: Vec<[String; 10]> = rows.iter().map(|row| cells(row)).collect();
    let widths: Vec<usize> = (0..10)
        .map(|i| {
            table
                .iter()
                .map(|cells| cells[i].chars().count())
                .chain([HEADINGS[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let headings: Vec<String> = HEADINGS.iter().map(|h| h.to_string()).collect();
    println!("{}", line(&headings));
    for cells in &table {
        println!("{}", line(cells));
    }
    ExitCode::SUCCESS
}
