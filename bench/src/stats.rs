//! Latency samples and how they are printed.

use std::time::Duration;

/// Sorted samples of one measurement.
pub struct Samples {
    pub name: String,
    sorted: Vec<Duration>,
    pub missed: usize,
}

impl Samples {
    pub fn new(name: impl Into<String>, mut samples: Vec<Duration>, missed: usize) -> Samples {
        samples.sort();
        Samples {
            name: name.into(),
            sorted: samples,
            missed,
        }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    fn at(&self, fraction: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.sorted.len() as f64 - 1.0) * fraction).round() as usize;
        self.sorted[index]
    }

    pub fn p50(&self) -> Duration {
        self.at(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.at(0.99)
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
}

/// A duration for people: µs below 10 ms, ms above.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// Prints a markdown table of samples, with each row's p50 as a multiple
/// of the first row's.
pub fn table(title: &str, rows: &[Samples]) {
    table_against(title, rows, 0)
}

/// Prints a markdown table of samples, with each row's p50 as a multiple
/// of row `base`'s.
pub fn table_against(title: &str, rows: &[Samples], base: usize) {
    println!("\n### {title}\n");
    println!("| waiter | n | p50 | p99 | max | p50 vs row {} |", base + 1);
    println!("|---|---|---|---|---|---|");
    let base = rows
        .get(base)
        .map(Samples::p50)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);
    for row in rows {
        let missed = if row.missed > 0 {
            format!(" ({} missed)", row.missed)
        } else {
            String::new()
        };
        println!(
            "| {} | {}{missed} | {} | {} | {} | {:.2}× |",
            row.name,
            row.count(),
            human(row.p50()),
            human(row.p99()),
            human(row.max()),
            row.p50().as_secs_f64() / base
        );
    }
}
