//! The full-screen view: the table, a header with the counts and the
//! daemon's figures, a detail pane with the end of the selected session's
//! output. Redrawn when something changed, at most five times a second
//! (and once a second for the running sessions' elapsed time). The
//! terminal is restored on `q`, on an error, on a panic and on SIGTERM.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::Terminal;

use crate::model::{cells, Filter, Model, HEADINGS};
use crate::{apply, Msg};

/// The fastest redraw.
const FRAME: Duration = Duration::from_millis(200);
/// The end of `stdout.log` the detail pane reads.
const TAIL_BYTES: u64 = 8192;

struct View {
    model: Model,
    filter: Filter,
    typing: bool,
    table: TableState,
    detail: Option<(String, String)>,
}

/// Puts the terminal back as it was (also from the panic hook).
fn restore() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

pub fn run(rx: &mpsc::Receiver<Msg>) -> io::Result<()> {
    // SIGTERM or the terminal going away (SIGHUP): restore and leave from
    // here, not from the loop, which may be inside the terminal's reader
    // (reading a closed terminal returns nothing, for ever).
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            restore();
            // As a shell reports a death by that signal.
            std::process::exit(128 + signal);
        }
    });
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        hook(info);
    }));
    enable_raw_mode()?;
    crossterm::execute!(io::stdout(), EnterAlternateScreen)?;
    let result = serve(rx);
    restore();
    result
}

fn serve(rx: &mpsc::Receiver<Msg>) -> io::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut view = View {
        model: Model::default(),
        filter: Filter::default(),
        typing: false,
        table: TableState::default().with_selected(Some(0)),
        detail: None,
    };
    let mut dirty = true;
    let mut drawn = Instant::now() - Duration::from_secs(1);
    loop {
        while let Ok(msg) = rx.try_recv() {
            // A lost stream is in the model (its header) until it is back.
            let _ = apply(&mut view.model, msg);
            dirty = true;
        }
        if dirty && drawn.elapsed() >= FRAME || drawn.elapsed() >= Duration::from_secs(1) {
            terminal.draw(|frame| draw(frame, &mut view))?;
            drawn = Instant::now();
            dirty = false;
            panic_for_tests();
        }
        if event::poll(FRAME)? {
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    if !on_key(&mut view, key.code) {
                        return Ok(());
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Debug builds only: `VERDICT_TOP_PANIC=1` panics after a frame is
/// drawn, so that the tests can see the panic path give the terminal back.
fn panic_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("VERDICT_TOP_PANIC").is_some() {
        panic!("VERDICT_TOP_PANIC is set");
    }
}

/// Handles a key; false to quit.
fn on_key(view: &mut View, key: KeyCode) -> bool {
    if view.typing {
        match key {
            KeyCode::Enter | KeyCode::Esc => view.typing = false,
            KeyCode::Backspace => {
                view.filter.text.pop();
            }
            KeyCode::Char(c) => view.filter.text.push(c),
            _ => {}
        }
        return true;
    }
    let shown = view.model.shown(&view.filter).len();
    let at = view.table.selected().unwrap_or(0);
    match key {
        KeyCode::Char('q') | KeyCode::Esc if view.detail.is_none() => return false,
        KeyCode::Char('q') | KeyCode::Esc => view.detail = None,
        KeyCode::Down | KeyCode::Char('j') => view
            .table
            .select(Some((at + 1).min(shown.saturating_sub(1)))),
        KeyCode::Up | KeyCode::Char('k') => view.table.select(Some(at.saturating_sub(1))),
        KeyCode::Char('f') => view.filter.failed_only = !view.filter.failed_only,
        KeyCode::Char('/') => {
            view.filter.text.clear();
            view.typing = true;
        }
        KeyCode::Enter => {
            let rows = view.model.shown(&view.filter);
            view.detail = rows.get(at).map(|row| {
                let tail =
                    verdict_client::OutputTail::of(std::path::Path::new(&row.dir), TAIL_BYTES)
                        .map_or_else(|| "(no stdout.log)".into(), |tail| tail.tail);
                (row.id.clone(), tail)
            });
        }
        _ => {}
    }
    true
}

fn draw(frame: &mut ratatui::Frame, view: &mut View) {
    let areas = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .split(frame.area());
    let header = view.model.header();
    let filter = match (
        view.filter.failed_only,
        view.filter.text.is_empty(),
        view.typing,
    ) {
        (_, _, true) => format!("filter: /{}_", view.filter.text),
        (true, true, _) => "showing: failed".into(),
        (false, false, _) => format!("showing: /{}", view.filter.text),
        (true, false, _) => format!("showing: failed, /{}", view.filter.text),
        (false, true, _) => String::new(),
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(header), Line::from(filter)]),
        areas[0],
    );
    let rows: Vec<Row> = view
        .model
        .shown(&view.filter)
        .into_iter()
        .map(|row| {
            let style = if row.failed() || row.synthetic {
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else if row.running {
                Style::default().fg(Color::Green)
            } else {
                Style::default()
            };
            Row::new(cells(row)).style(style)
        })
        .collect();
    let widths = [
        Constraint::Min(10),
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(9),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(HEADINGS).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    match &view.detail {
        Some((id, tail)) => frame.render_widget(
            // The last lines that fit inside the borders.
            Paragraph::new(last_lines(tail, areas[1].height.saturating_sub(2).into())).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {id}: stdout.log (q: back) ")),
            ),
            areas[1],
        ),
        None => frame.render_stateful_widget(table, areas[1], &mut view.table),
    }
    frame.render_widget(
        Paragraph::new("j/k move · Enter output · f failed · / filter · q quit"),
        areas[2],
    );
}
