//! `verdict top` (run as `verdict-top`, or `verdict top`): every session
//! under verdictd's roots at a glance, one row each, grouped by project,
//! newest first; running ones with their pid and elapsed time, ended ones
//! with status, exit code and when. Sessions that had ended before it
//! started come from a bounded scan of their files (the newest few per
//! project, in this process); everything after from the daemon's event
//! stream. The daemon's figures are read once per connection.

mod cli;
mod model;
mod tui;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use verdict_client::subscribe::{Notice, Subscription};
use verdict_client::{Client, Options};

use crate::cli::Cli;
use crate::model::{cells, Daemon, Model, HEADINGS};

/// What the event thread hands the view.
#[derive(Debug)]
pub enum Msg {
    Notice(Notice),
    Scanned(Vec<verdict_client::sessions::Row>),
    /// Sessions shown as running, read again after a reconnect.
    Reread(Vec<verdict_client::sessions::Row>),
    Daemon(Daemon),
    Lost(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| Options::default().socket);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
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

/// Messages the view has not taken yet, at most. Past it the event thread
/// waits, the socket fills, and the daemon drops a subscriber that far
/// behind (its 1 MiB bound); the view then subscribes again and reads its
/// running sessions again, so a terminal that stopped taking output costs
/// bounded memory and loses no end.
const QUEUE: usize = 16_384;

/// The first pause before subscribing again after the daemon went away,
/// and the longest (doubling in between).
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The event stream on a thread of its own: on each subscription, the
/// daemon's figures and a scan of its roots, then every start and end.
/// When the daemon goes away it subscribes again (the view says so
/// meanwhile), and then reads again the sessions it knew as running, as
/// their ends may have come and gone while nobody listened.
fn follow(socket: PathBuf, per_project: usize, tx: mpsc::SyncSender<Msg>) {
    std::thread::spawn(move || {
        // Session directory → id, of the sessions shown as running.
        let mut running: HashMap<String, String> = HashMap::new();
        let mut subscribed_before = false;
        let mut pause = RETRY_FIRST;
        loop {
            for line in Subscription::new(socket.clone(), Vec::new(), false) {
                let line = match line {
                    Ok(line) => line,
                    Err(err) => {
                        if tx.send(Msg::Lost(err.to_string())).is_err() {
                            return;
                        }
                        break;
                    }
                };
                match &line.notice {
                    Notice::Subscribed { roots, .. } => {
                        pause = RETRY_FIRST;
                        let mut daemon = daemon(&socket);
                        daemon.reconnected = std::mem::replace(&mut subscribed_before, true);
                        let _ = tx.send(Msg::Daemon(daemon));
                        if !running.is_empty() {
                            let rows = running
                                .iter()
                                .map(|(dir, id)| {
                                    verdict_client::sessions::row(Path::new(dir), id, "")
                                })
                                .collect();
                            let _ = tx.send(Msg::Reread(rows));
                        }
                        let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
                        let (rows, _) = verdict_client::sessions::scan(&roots, per_project);
                        running.extend(
                            rows.iter()
                                .filter(|row| row.running)
                                .map(|row| (row.dir.clone(), row.id.clone())),
                        );
                        let _ = tx.send(Msg::Scanned(rows));
                    }
                    Notice::Started(started) => {
                        running.insert(started.dir.clone(), started.session.clone());
                    }
                    Notice::Ended(verdict) => {
                        if let Some(dir) = &verdict.dir {
                            running.remove(dir);
                        }
                    }
                }
                if tx.send(Msg::Notice(line.notice)).is_err() {
                    return;
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
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

/// Applies one message to the model; an error when the stream is lost.
pub fn apply(model: &mut Model, msg: Msg) -> Result<(), String> {
    match msg {
        Msg::Notice(Notice::Subscribed { roots, .. }) => {
            model.roots = roots.into_iter().map(PathBuf::from).collect();
        }
        Msg::Notice(Notice::Started(started)) => model.started(&started),
        Msg::Notice(Notice::Ended(verdict)) => model.ended(&verdict),
        Msg::Scanned(rows) => model.scanned(rows),
        Msg::Reread(rows) => model.reread(rows),
        Msg::Daemon(daemon) => {
            model.daemon = daemon;
            model.lost = None;
        }
        Msg::Lost(err) => {
            model.lost = Some(err.clone());
            return Err(err);
        }
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
