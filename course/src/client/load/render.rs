//! What a load run measured, and how it is printed: [`LoadReport`] and the live [`Progress`] line.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::config::Threads;
use super::series::Throughput;
use crate::client::fire::{ErrorKind, RequestError};
use crate::client::histogram::{Histogram, format_nanos};

/// A snapshot taken once a [`PROGRESS_INTERVAL`](super::PROGRESS_INTERVAL) while a run is going.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time since the run started.
    pub elapsed: Duration,
    /// Responses so far.
    pub responses: u64,
    /// Failed requests so far.
    pub errors: u64,
    /// Responses per second over the last interval.
    pub rate: f64,
    /// Median latency so far, in nanoseconds.
    pub p50: u64,
}

impl fmt::Display for Progress {
    /// One line for a terminal: `  3 s    12345 req    4115 req/s  p50 210.0 us  errors 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>4} s {:>9} req {:>8.0} req/s  p50 {:>9}  errors {}",
            self.elapsed.as_secs_f64().round(),
            self.responses,
            self.rate,
            format_nanos(self.p50),
            self.errors
        )
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The URL loaded.
    pub url: String,
    /// Connections driven at once.
    pub connections: usize,
    /// How they were driven (with [`Threads::EventLoops`], the number actually started).
    pub threads: Threads,
    /// Whether connections were kept alive.
    pub keep_alive: bool,
    /// The limits the run had, in words (`10 s`, `500 requests`, ...).
    pub limits: String,
    /// From the start of the run to the end of its last request.
    pub elapsed: Duration,
    /// Latency of every answered request, in nanoseconds.
    pub latency: Histogram,
    /// Responses by status code, in increasing order of code.
    pub statuses: Vec<(u16, u64)>,
    /// Failed requests by kind, in [`ErrorKind::ALL`] order, kinds with none left out.
    pub errors: Vec<(ErrorKind, u64)>,
    /// The first error of each kind that occurred, for its message.
    pub error_examples: Vec<RequestError>,
    /// Bytes read from the server (heads and bodies).
    pub bytes_read: u64,
    /// TCP connections opened (equal to `connections` when keep-alive works throughout).
    pub connects: u64,
    /// Requests in flight when the time ran out: abandoned, counted neither as responses nor as
    /// errors.
    pub unfinished: u64,
    /// Responses per interval of the run, for requests/s over time (the SVG chart draws it; the
    /// text report does not print it).
    pub throughput: Throughput,
}

impl LoadReport {
    /// Requests that got a response (any status).
    pub fn responses(&self) -> u64 {
        self.latency.count()
    }

    /// Requests that failed, all kinds together.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|&(_, n)| n).sum()
    }

    /// How many of `kind` occurred.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors.iter().find(|&&(k, _)| k == kind).map_or(0, |&(_, n)| n)
    }

    /// Responses with status `code`.
    pub fn status_count(&self, code: u16) -> u64 {
        self.statuses.iter().find(|&&(c, _)| c == code).map_or(0, |&(_, n)| n)
    }

    /// True if no request failed (`unfinished` ones at the end of a timed run do not count).
    pub fn all_answered(&self) -> bool {
        self.error_count() == 0
    }

    /// Responses per second over the whole run.
    pub fn requests_per_sec(&self) -> f64 {
        per_sec(self.responses() as f64, self.elapsed)
    }

    /// Bytes read per second over the whole run.
    pub fn bytes_per_sec(&self) -> f64 {
        per_sec(self.bytes_read as f64, self.elapsed)
    }

    /// The whole report; the histogram's bars are `bar_width` columns (lines are at most
    /// `bar_width + 34` wide; 40 keeps within 80 columns).
    pub fn render(&self, bar_width: usize) -> String {
        let mut out = String::new();
        let how = if self.keep_alive { "keep-alive" } else { "one request each" };
        let _ = writeln!(out, "load {} for {}", self.url, self.limits);
        let threads = match self.threads {
            Threads::EventLoops(1) => "on 1 event-loop thread".to_string(),
            Threads::EventLoops(t) => format!("on {t} event-loop threads"),
            Threads::PerConnection => "a blocking thread each".to_string(),
        };
        let _ = writeln!(out, "with {} connections, {threads} ({how})", self.connections);
        out.push('\n');
        let _ = writeln!(
            out,
            "requests     {} in {:.2} s: {:.1} req/s, {} read",
            self.responses(),
            self.elapsed.as_secs_f64(),
            self.requests_per_sec(),
            format_bytes_per_sec(self.bytes_per_sec())
        );
        let _ = writeln!(out, "connections  {} opened", self.connects);
        if self.unfinished > 0 {
            let _ =
                writeln!(out, "unfinished   {} (in flight when time ran out; not counted)", self.unfinished);
        }
        if !self.latency.is_empty() {
            let l = &self.latency;
            let cells = [
                ("min", l.min()),
                ("mean", l.mean().round() as u64),
                ("p50", l.percentile(50.0)),
                ("p90", l.percentile(90.0)),
                ("p99", l.percentile(99.0)),
                ("p99.9", l.percentile(99.9)),
                ("max", l.max()),
            ];
            let mut names = String::from("latency  ");
            let mut values = String::from("         ");
            for (name, ns) in cells {
                let _ = write!(names, " {name:>9}");
                let _ = write!(values, " {:>9}", format_nanos(ns));
            }
            let _ = writeln!(out, "{names}\n{values}");
            out.push('\n');
            out.push_str("latency histogram (log scale: each row is part of an octave)\n");
            out.push_str(&l.render_ascii(bar_width, &format_nanos));
            out.push('\n');
        }
        let statuses: Vec<String> = self.statuses.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let statuses = if statuses.is_empty() { "none".to_string() } else { statuses.join(", ") };
        let _ = writeln!(out, "status       {statuses}");
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors       none");
        } else {
            let list: Vec<String> = self.errors.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
            let _ = writeln!(out, "errors       {}", list.join(", "));
            for e in &self.error_examples {
                let line = format!("  first {e}");
                let _ = writeln!(out, "{}", clip(&line, 79));
            }
        }
        out
    }
}

impl fmt::Display for LoadReport {
    /// [`render`](LoadReport::render) with 40-column bars (fits 80 columns).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(40))
    }
}

pub(super) fn per_sec(x: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { x / s } else { 0.0 }
}

fn format_bytes_per_sec(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.2} GB/s", b / 1e9),
        b if b >= 1e6 => format!("{:.2} MB/s", b / 1e6),
        b if b >= 1e3 => format!("{:.2} kB/s", b / 1e3),
        b => format!("{b:.0} B/s"),
    }
}

fn clip(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut s: String = line.chars().take(max.saturating_sub(3)).collect();
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::client::url::Url;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8000/hello").unwrap()
    }

    #[test]
    fn progress_line_reads_well() {
        let p = Progress {
            elapsed: Duration::from_millis(3004),
            responses: 12345,
            errors: 0,
            rate: 4115.2,
            p50: 210_000,
        };
        assert_eq!(p.to_string(), "   3 s     12345 req     4115 req/s  p50  210.0 us  errors 0");
    }

    #[test]
    fn report_renders_within_80_columns() {
        let mut latency = Histogram::new();
        for i in 0..1000u64 {
            latency.record(50_000 + i * 300);
        }
        let report = LoadReport {
            url: url().to_string(),
            connections: 32,
            threads: Threads::EventLoops(2),
            keep_alive: true,
            limits: "10 s".into(),
            elapsed: Duration::from_secs(2),
            latency,
            statuses: vec![(200, 990), (404, 10)],
            errors: vec![(ErrorKind::Closed, 3)],
            error_examples: vec![RequestError::new(ErrorKind::Closed, "connection closed ".repeat(10))],
            bytes_read: 150_000,
            connects: 35,
            unfinished: 2,
            throughput: Throughput::default(),
        };
        let text = report.to_string();
        assert!(text.is_ascii());
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert!(text.contains("requests     1000 in 2.00 s: 500.0 req/s, 75.00 kB/s read\n"), "{text}");
        assert!(text.contains("status       200: 990, 404: 10\n"), "{text}");
        assert!(text.contains("errors       3 closed\n"), "{text}");
        assert!(text.contains("unfinished   2"), "{text}");
        assert_eq!((report.status_count(404), report.errors_of(ErrorKind::Closed)), (10, 3));
        assert!(!report.all_answered());
    }
}
