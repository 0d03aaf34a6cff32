//! Load mode: keep `c` connections busy for a while and measure throughput and latency.
//!
//! Where [`fire`](super::fire()) asks "how does the server handle n requests at once?", load
//! mode asks "how many requests a second does it answer, and how long does each take?", the
//! question `wrk` and `ab` answer. Each of `c` connections sends one `GET` after another
//! (HTTP/1.1 keep-alive), reading each response to its `Content-Length` before sending the
//! next: a *closed loop*, so there are never more than `c` requests in flight. With
//! [`LoadConfig::keep_alive`] off (`--close`) every request gets a fresh connection and says
//! `Connection: close`, which measures the server's accept path too.
//!
//! # Two threading models
//!
//! * **Event loops** ([`Threads::EventLoops`], `-t N`, the default with N = 2): `N` threads,
//!   each owning `c / N` of the connections (the first `c % N` threads one more), with
//!   non-blocking sockets and one `epoll` set per thread. This is `wrk -t N -c C`'s model, so
//!   the two can be compared on the same machine. How the loop works, and why it is
//!   edge-triggered, is in `src/client/load/event_loop.rs`.
//! * **A blocking thread per connection** ([`Threads::PerConnection`],
//!   `--thread-per-connection`): the simplest load generator there is, `read` and `write` in a
//!   loop, and the model this crate's servers teach. It is `wrk -t C -c C`'s model. It is kept
//!   because it costs one `match` to keep and because comparing the two is itself a lesson:
//!   same requests, same server, different numbers (next section).
//!
//! Both keep the same counters and the same per-thread [`Histogram`], classify errors the same
//! way, stop at exactly `-n` requests (a shared atomic counter is claimed before each request),
//! stop at the deadline, and reconnect the same way (see [`LoadConfig::keep_alive`]).
//!
//! # Why the threading model changes the numbers
//!
//! On one machine the client and the server share the CPUs, so requests/s measures the *pair*,
//! not the server alone: every microsecond the client spends is one the server does not get.
//! The load generator's threading model moves the result in three ways:
//!
//! * **CPU share.** The scheduler shares a core between *runnable threads*, not processes. 32
//!   client threads next to a server with a handful get most of a contended core; 2 client
//!   threads get about what 2 server threads get. So with cores shared, the thread-per-connection
//!   model starves the server less or more depending on how many threads the server has, and
//!   `-t` is as much a knob on the *server's* CPU share as on the client's.
//! * **Context switches.** A blocking thread per connection sleeps in `read` after every
//!   request and is woken when its response arrives: one context switch per request, plus time
//!   waiting for its turn on the CPU, which is counted in its latency. An event loop is woken
//!   once and then handles every connection that became ready meanwhile, so under load it
//!   switches far less and spends its CPU on requests.
//! * **System calls per request.** Both models here make one `write` and one `read` per request
//!   (plus, for event loops, a share of one `epoll_wait`). `wrk` makes two more: it switches
//!   write interest on and off with `epoll_ctl` around every request. With cores shared, a
//!   cheaper client leaves more CPU to the server and so reports more requests/s.
//!
//! Coordinated omission is **not** corrected, in either model, as `wrk` does not (`wrk2 -R`
//! does): a closed loop sends the next request only after the previous response, so when the
//! server stalls the client stops sending, and the requests that *would* have been sent during
//! the stall and waited are never measured. Latencies here are service times under a closed
//! loop, not what users arriving at a fixed rate would see.
//!
//! # Bounded, always
//!
//! A run stops at its duration or its request count, whichever comes first; with neither it
//! runs [`DEFAULT_DURATION`]. Whatever the configuration says, a run is capped at
//! [`MAX_DURATION`], [`MAX_REQUESTS`] and [`MAX_CONNECTIONS`]. A request still in flight when
//! the time is up is abandoned and counted as `unfinished`, not as an error (as `wrk` does).
//!
//! # Measuring without disturbing
//!
//! The client competes with the server for the same CPUs (on loopback), so every cycle it spends
//! is one the server does not get. The hot loop therefore does as little as it can:
//!
//! * the request bytes are built once and sent with one `write` per request;
//! * each blocking connection, or each event-loop thread, reads into one buffer, allocated
//!   once; the head is parsed in place with httparse and the body is skipped by
//!   `Content-Length`, never copied anywhere (an event loop copies out only a head split
//!   across reads);
//! * an event loop registers each socket with `epoll` once and never changes it, so a request
//!   costs no `epoll_ctl`;
//! * latencies go into a per-thread [`Histogram`] (a fixed array of counters), merged once at
//!   the end; the only lock taken per request is the thread's own, which nobody else touches
//!   except the once-a-second progress reader;
//! * `TCP_NODELAY` is on, so a request is never held back by Nagle's algorithm.
//!
//! A request's latency runs from just before its `write` to the moment the last body byte has
//! been read. Connecting is not part of it (in `--close` mode, see `connections opened`).
//!
//! # Comparing with `wrk`: what a number on loopback means
//!
//! Compare like with like: same machine, same connection count, same thread count
//! (`client --load -t 2 -c 32` against `wrk -t2 -c32`, or `--thread-per-connection` against
//! `wrk -t32 -c32`), runs alternated, several of each, because other work on the machine moves
//! every number. Measured on a shared 2-core box, `/hello`, `-c 32`, `client --load -t 2`
//! against `wrk -t2 --latency` (and `--close` against `-H 'Connection: close'`):
//!
//! | server, mode (9 alternated pairs of 5 s) | req/s, this / `wrk` | p50, this / `wrk` |
//! |------------------------------------------|---------------------|-------------------|
//! | `threaded_server`, keep-alive            | 1.12 (0.88 - 1.27)  | 1.20 (0.64 - 1.46) |
//! | `threaded_server`, close                 | 1.03 (0.95 - 1.27)  | 0.91 (0.84 - 0.97) |
//! | `pool_server --threads 4`, keep-alive    | 1.06 (0.92 - 1.16)  | 1.02 (0.95 - 1.12) |
//! | `pool_server --threads 4`, close         | 1.25 (1.02 - 2.58)  | 0.76 (0.50 - 0.85) |
//!
//! (medians, ranges in brackets; the machine was shared with other builds, load average 15 to
//! 40, so single runs move by 20 % and more.) What is left of the gap is this client being
//! cheaper, not a different model: per keep-alive request it makes 2 system calls where `wrk`
//! makes about 4, and used about 5.4 us of CPU where `wrk` used 6.7; per `--close` request
//! (socket, setsockopt, connect, epoll_ctl, getsockopt, write, two reads, close) about 9 where
//! `wrk` makes about 14 (it adds two `fcntl` and six `epoll_ctl`). p50 against
//! `threaded_server` is bimodal (next paragraph) and moves either way between runs.
//!
//! `--close` against the pool server is the one case outside 10 %, and it is not explained by
//! system calls alone: CPU per request was about the same for both (17 us), but this client
//! kept its two threads busier (0.85 of a core against `wrk`'s 0.7), and `wrk`'s own rate
//! swung from 21,000 to 45,000 req/s between runs while this client's stayed near 50,000.
//! Where `wrk`'s threads spend the rest of the time was not pinned down.
//!
//! With a blocking thread per connection instead (3 pairs, `threaded_server`, keep-alive) this
//! client read 1.6 to 2.2 times `wrk -t2`'s requests/s: 32 threads' CPU share next to the server's, plus the cheaper
//! request. Pinned apart from the server (`taskset`), that model agrees with `wrk -t32 -c32`.
//!
//! The histogram often has **two humps** on a shared machine: one around 10-25 us (the server
//! thread ran at once, on the core the request was written from) and one around 150-300 us
//! (it waited its turn behind other runnable threads). When the two are about the same size
//! the median falls between them and moves a lot from run to run; the histogram shows why, a
//! single p50 cannot. Read p50 together with the mean (which Little's law ties to requests/s:
//! mean latency is about connections / throughput) and p90.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use course::client::{LoadConfig, Url, load};
//!
//! let url = Url::parse("http://127.0.0.1:8000/hello")?;
//! let cfg = LoadConfig { connections: 8, duration: Some(Duration::from_secs(2)), ..LoadConfig::new(url) };
//! let report = load(&cfg);
//! println!("{report}");
//! println!("{:.0} req/s, p99 {} ns", report.requests_per_sec(), report.latency.percentile(99.0));
//! # Ok::<(), course::client::UrlError>(())
//! ```

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::fire::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, ErrorKind, RequestError};
use super::histogram::{Histogram, format_nanos};
use super::url::Url;

mod event_loop;

/// Connections when none are asked for: 32, a common `wrk -c` choice.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Event-loop threads when none are asked for: 2, `wrk`'s usual `-t2`.
pub const DEFAULT_THREADS: usize = 2;
/// How long a run lasts when neither a duration nor a request count is given: 10 s.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Most connections a run opens (and threads, with [`Threads::PerConnection`]): 10,000.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Longest a run lasts, whatever was asked: one hour (also the limit of a count-only run).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most requests a run sends: 10,000,000.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// How often the progress callback is called: every second.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a blocked read or write waits before the thread looks at the clock. The socket
/// timeouts are set to this once per connection (not per request, which would cost a system
/// call each time); it is what lets a run stop on time even if the server has stopped answering.
const TICK: Duration = Duration::from_millis(100);
/// The per-connection read buffer: big enough for any head the example servers send and for
/// skipping bodies in few reads.
const READ_BUF: usize = 64 * 1024;
/// Headers parsed per response; more is a bad response.
const MAX_HEADERS: usize = 32;
/// Pause after a failed connect, so a server that is down is not hammered with connection
/// attempts at full CPU speed (each one still counts as an error).
const CONNECT_PAUSE: Duration = Duration::from_millis(10);
/// Stack of each connection thread: it needs little, and 10,000 default 2 MiB stacks would not.
const THREAD_STACK: usize = 256 * 1024;
/// Status codes are three digits; counted in a flat array indexed by code.
const STATUS_SLOTS: usize = 1000;

/// How a run spreads its connections over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// This many event-loop threads (`-t N`, [`DEFAULT_THREADS`]), each multiplexing its share
    /// of the connections over non-blocking sockets with `epoll`, as `wrk -t N` does. More
    /// threads than connections are not started.
    EventLoops(usize),
    /// One thread per connection doing blocking I/O (`--thread-per-connection`), like
    /// `wrk -t C -c C`: the simplest client, and the model the crate's servers teach.
    PerConnection,
}

/// What to load, how hard and for how long. Build it with [`LoadConfig::new`] and struct update
/// syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// Where to send the requests (`GET`).
    pub url: Url,
    /// Connections ([`DEFAULT_CONNECTIONS`]; at most [`MAX_CONNECTIONS`]).
    pub connections: usize,
    /// Threads that drive them ([`Threads::EventLoops`] of [`DEFAULT_THREADS`]).
    pub threads: Threads,
    /// Stop after this long (capped at [`MAX_DURATION`]).
    pub duration: Option<Duration>,
    /// Stop after this many requests (capped at [`MAX_REQUESTS`]). A request that failed
    /// counts: `requests` is what was attempted.
    pub requests: Option<u64>,
    /// `true` (the default): many requests per connection, reconnecting when the server closes.
    /// `false`: one request per connection, sent with `Connection: close`.
    pub keep_alive: bool,
    /// Time allowed for each TCP connect ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Time allowed for each request, from its write to the end of its response
    /// ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl LoadConfig {
    /// [`DEFAULT_CONNECTIONS`] keep-alive connections to `url` for [`DEFAULT_DURATION`].
    pub fn new(url: Url) -> LoadConfig {
        LoadConfig {
            url,
            connections: DEFAULT_CONNECTIONS,
            threads: Threads::EventLoops(DEFAULT_THREADS),
            duration: None,
            requests: None,
            keep_alive: true,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// How long the run may last: the duration asked for, or [`DEFAULT_DURATION`] if neither a
    /// duration nor a count was given, or [`MAX_DURATION`] for a count-only run; never more
    /// than [`MAX_DURATION`].
    pub fn time_limit(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(d), _) => d.min(MAX_DURATION),
            (None, None) => DEFAULT_DURATION,
            (None, Some(_)) => MAX_DURATION,
        }
    }

    /// How many requests the run may send, if limited: at most [`MAX_REQUESTS`].
    pub fn request_limit(&self) -> Option<u64> {
        self.requests.map(|n| n.min(MAX_REQUESTS))
    }

    /// Connections actually opened at once: between 1 and [`MAX_CONNECTIONS`], and no more than
    /// the request limit (a connection with nothing to send would only idle).
    pub fn connection_count(&self) -> usize {
        let c = self.connections.clamp(1, MAX_CONNECTIONS);
        match self.request_limit() {
            Some(n) => c.min(usize::try_from(n.max(1)).unwrap_or(usize::MAX)),
            None => c,
        }
    }

    /// Threads actually started: one per connection, or the event loops asked for, between 1
    /// and [`connection_count`](LoadConfig::connection_count).
    pub fn thread_count(&self) -> usize {
        let c = self.connection_count();
        match self.threads {
            Threads::EventLoops(t) => t.clamp(1, c),
            Threads::PerConnection => c,
        }
    }

    /// The limits in words: `10 s`, `500 requests`, `500 requests or 10 s`.
    fn limits_text(&self) -> String {
        let secs = format!("{} s", trim_float(self.time_limit().as_secs_f64()));
        match (self.duration, self.request_limit()) {
            (Some(_), Some(n)) => format!("{n} requests or {secs}, whichever comes first"),
            (None, Some(n)) => format!("{n} requests"),
            _ => secs,
        }
    }
}

/// `2`, `0.5`, `1.25`: seconds without trailing zeros.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A snapshot taken once a [`PROGRESS_INTERVAL`] while a run is going.
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

fn per_sec(x: f64, d: Duration) -> f64 {
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

/// Runs the load described by `cfg` and reports. Blocks for the run's length (see
/// [`LoadConfig::time_limit`]). Never panics because of anything the server does: failures are
/// counted by [`ErrorKind`].
pub fn load(cfg: &LoadConfig) -> LoadReport {
    run(cfg, None)
}

/// [`load`], calling `on_progress` once every [`PROGRESS_INTERVAL`] while the run goes on (the
/// example prints a live line with it when stdout is a terminal).
pub fn load_with_progress(cfg: &LoadConfig, mut on_progress: impl FnMut(&Progress)) -> LoadReport {
    run(cfg, Some(&mut on_progress))
}

/// What one connection thread counted. Each thread owns one behind its own mutex; the thread
/// locks it once per request (uncontended, so a couple of atomic instructions), and the progress
/// reader locks each once a second.
struct Tally {
    latency: Histogram,
    statuses: Vec<u64>,
    errors: [u64; ErrorKind::ALL.len()],
    examples: Vec<RequestError>,
    bytes: u64,
    connects: u64,
    unfinished: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: Histogram::new(),
            statuses: vec![0; STATUS_SLOTS],
            errors: [0; ErrorKind::ALL.len()],
            examples: Vec::new(),
            bytes: 0,
            connects: 0,
            unfinished: 0,
        }
    }

    fn error(&mut self, e: RequestError) {
        let slot = ErrorKind::ALL.iter().position(|&k| k == e.kind).unwrap_or(ErrorKind::ALL.len() - 1);
        if self.errors[slot] == 0 {
            self.examples.push(e);
        }
        self.errors[slot] += 1;
    }

    fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}

type SharedTally = Arc<Mutex<Tally>>;

fn lock(t: &SharedTally) -> std::sync::MutexGuard<'_, Tally> {
    // A poisoned tally still holds good counts: a panic cannot happen between its updates.
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(cfg: &LoadConfig, mut on_progress: Option<&mut dyn FnMut(&Progress)>) -> LoadReport {
    let start = Instant::now();
    let deadline = start + cfg.time_limit();
    let connections = cfg.connection_count();
    let threads = cfg.thread_count();
    let mut report = LoadReport {
        url: cfg.url.to_string(),
        connections,
        threads: match cfg.threads {
            Threads::EventLoops(_) => Threads::EventLoops(threads),
            Threads::PerConnection => Threads::PerConnection,
        },
        keep_alive: cfg.keep_alive,
        limits: cfg.limits_text(),
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        statuses: Vec::new(),
        errors: Vec::new(),
        error_examples: Vec::new(),
        bytes_read: 0,
        connects: 0,
        unfinished: 0,
    };
    if cfg.request_limit() == Some(0) {
        return report;
    }
    // Resolve once: the resolver is not what we measure.
    let addrs = match cfg.url.socket_addrs() {
        Ok(addrs) if !addrs.is_empty() => Arc::new(addrs),
        Ok(_) => {
            let e = RequestError::new(ErrorKind::Other, "resolve: no address for the host");
            report.errors = vec![(e.kind, 1)];
            report.error_examples = vec![e];
            return report;
        }
        Err(e) => {
            let e = RequestError::io("resolve", &e);
            report.errors = vec![(e.kind, 1)];
            report.error_examples = vec![e];
            return report;
        }
    };
    let request: Arc<[u8]> = request_bytes(&cfg.url, cfg.keep_alive).into();
    let issued = Arc::new(AtomicU64::new(0));
    // Each thread holds a sender; when the last thread ends, the receiver sees the channel close,
    // which wakes the progress loop below at once instead of at its next tick.
    let (alive_tx, alive_rx) = mpsc::channel::<()>();
    let mut workers = Vec::with_capacity(threads);
    let mut tallies = Vec::with_capacity(threads);
    let mut spawn_errors = Tally::new();
    let multiplexed = matches!(cfg.threads, Threads::EventLoops(_));
    for index in 0..threads {
        // Connections split as evenly as they go: the first `connections % threads` threads
        // take one more.
        let share = connections / threads + usize::from(index < connections % threads);
        let tally: SharedTally = Arc::new(Mutex::new(Tally::new()));
        let worker = Worker {
            addrs: Arc::clone(&addrs),
            request: Arc::clone(&request),
            keep_alive: cfg.keep_alive,
            deadline,
            issued: Arc::clone(&issued),
            limit: cfg.request_limit(),
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout.max(Duration::from_millis(1)),
            tally: Arc::clone(&tally),
        };
        let alive = alive_tx.clone();
        let spawned =
            thread::Builder::new().name(format!("load-{index}")).stack_size(THREAD_STACK).spawn(move || {
                if !multiplexed {
                    worker.run();
                } else {
                    let tally = Arc::clone(&worker.tally);
                    match event_loop::EventLoop::new(worker, share) {
                        Ok(event_loop) => event_loop.run(),
                        Err(e) => lock(&tally).error(RequestError::io("epoll_create", &e)),
                    }
                }
                drop(alive);
            });
        match spawned {
            Ok(handle) => {
                workers.push(handle);
                tallies.push(tally);
            }
            Err(e) => spawn_errors.error(RequestError::io("start thread", &e)),
        }
    }
    drop(alive_tx);

    let mut last = (start, 0u64);
    let mut next = start + PROGRESS_INTERVAL;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match alive_rx.recv_timeout(wait) {
            // Every thread has finished.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            // Nobody sends; a message would mean nothing.
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                next += PROGRESS_INTERVAL;
                if let Some(callback) = on_progress.as_mut() {
                    let mut merged = Histogram::new();
                    let mut errors = 0;
                    for t in &tallies {
                        let t = lock(t);
                        merged.merge(&t.latency);
                        errors += t.error_total();
                    }
                    let now = Instant::now();
                    let responses = merged.count();
                    let rate = per_sec((responses - last.1) as f64, now - last.0);
                    last = (now, responses);
                    callback(&Progress {
                        elapsed: now - start,
                        responses,
                        errors,
                        rate,
                        p50: merged.percentile(50.0),
                    });
                }
            }
        }
    }
    let mut total = spawn_errors;
    for handle in workers {
        if handle.join().is_err() {
            total.error(RequestError::new(ErrorKind::Other, "load thread panicked"));
        }
    }
    report.elapsed = start.elapsed();
    for t in &tallies {
        let t = lock(t);
        total.latency.merge(&t.latency);
        for (sum, n) in total.statuses.iter_mut().zip(&t.statuses) {
            *sum += n;
        }
        for e in &t.examples {
            if !total.examples.iter().any(|x| x.kind == e.kind) {
                total.examples.push(e.clone());
            }
        }
        for (sum, n) in total.errors.iter_mut().zip(t.errors) {
            *sum += n;
        }
        total.bytes += t.bytes;
        total.connects += t.connects;
        total.unfinished += t.unfinished;
    }
    report.latency = total.latency;
    report.statuses = total
        .statuses
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(code, &n)| (code as u16, n))
        .collect();
    report.errors =
        ErrorKind::ALL.iter().zip(total.errors).filter(|&(_, n)| n > 0).map(|(&k, n)| (k, n)).collect();
    total.examples.sort_by_key(|e| e.kind);
    report.error_examples = total.examples;
    report.bytes_read = total.bytes;
    report.connects = total.connects;
    report.unfinished = total.unfinished;
    report
}

/// The request, built once. Keep-alive needs no header in HTTP/1.1; one request per connection
/// says `Connection: close` so the server closes first (see [`Worker::finish_close`]).
fn request_bytes(url: &Url, keep_alive: bool) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: socketserver-client/{}\r\nAccept: */*\r\n{}\r\n",
        url.path_and_query,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
        if keep_alive { "" } else { "Connection: close\r\n" },
    )
    .into_bytes()
}

/// One connection thread's settings.
struct Worker {
    addrs: Arc<Vec<SocketAddr>>,
    request: Arc<[u8]>,
    keep_alive: bool,
    deadline: Instant,
    issued: Arc<AtomicU64>,
    limit: Option<u64>,
    connect_timeout: Duration,
    timeout: Duration,
    tally: SharedTally,
}

/// An open connection and the unread part of its buffer, `buf[start..end]`.
struct Conn {
    stream: TcpStream,
    start: usize,
    end: usize,
    /// Responses read on this connection so far.
    used: u64,
    /// Whether any byte of the current response has arrived.
    got_bytes: bool,
}

/// How one exchange ended other than with a response.
enum Failure {
    /// The run's time ran out while waiting.
    Deadline,
    /// The request failed.
    Error(RequestError),
}

/// A complete response.
struct Done {
    status: u16,
    bytes: u64,
    /// The server will close the connection after this response.
    close: bool,
}

impl Worker {
    /// Takes the right to send one more request: always, without a count; with one, while
    /// fewer than the limit have been taken. One atomic add per request, on a counter shared by
    /// all threads: the price of stopping at exactly `-n`.
    fn claim(&self) -> bool {
        match self.limit {
            None => true,
            Some(limit) => self.issued.fetch_add(1, Ordering::Relaxed) < limit,
        }
    }

    fn run(self) {
        let mut buf = vec![0u8; READ_BUF];
        let mut conn: Option<Conn> = None;
        'requests: while Instant::now() < self.deadline && self.claim() {
            // A keep-alive connection the server closed while idle fails on its next request
            // before any byte comes back. That is a race, not a fault: reconnect and send the
            // same request once more (a GET is safe to repeat), as browsers do.
            let mut retried = false;
            loop {
                if conn.is_none() {
                    match self.connect() {
                        Ok(stream) => {
                            lock(&self.tally).connects += 1;
                            conn = Some(Conn { stream, start: 0, end: 0, used: 0, got_bytes: false });
                        }
                        Err(Failure::Deadline) => break 'requests,
                        Err(Failure::Error(e)) => {
                            lock(&self.tally).error(e);
                            let left = self.deadline.saturating_duration_since(Instant::now());
                            thread::sleep(CONNECT_PAUSE.min(left));
                            continue 'requests;
                        }
                    }
                }
                // Just connected above if there was none.
                let Some(c) = conn.as_mut() else { continue 'requests };
                let sent = Instant::now();
                match self.exchange(c, &mut buf, sent) {
                    Ok(done) => {
                        let latency = sent.elapsed();
                        {
                            let mut t = lock(&self.tally);
                            t.latency.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                            t.statuses[usize::from(done.status).min(STATUS_SLOTS - 1)] += 1;
                            t.bytes += done.bytes;
                        }
                        c.used += 1;
                        if (done.close || !self.keep_alive)
                            && let Some(c) = conn.take()
                        {
                            Worker::finish_close(c, done.close);
                        }
                        continue 'requests;
                    }
                    Err(Failure::Deadline) => {
                        lock(&self.tally).unfinished += 1;
                        break 'requests;
                    }
                    Err(Failure::Error(e)) => {
                        let stale = c.used > 0
                            && !c.got_bytes
                            && matches!(e.kind, ErrorKind::Closed | ErrorKind::Reset);
                        conn = None;
                        if stale && !retried {
                            retried = true;
                            continue;
                        }
                        lock(&self.tally).error(e);
                        continue 'requests;
                    }
                }
            }
        }
    }

    /// Opens a connection with `TCP_NODELAY` and the [`TICK`] socket timeouts. A connect never
    /// outlasts the run.
    fn connect(&self) -> Result<TcpStream, Failure> {
        let mut last = RequestError::new(ErrorKind::Other, "connect: no address to connect to");
        for addr in self.addrs.iter() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Deadline);
            }
            match TcpStream::connect_timeout(addr, self.connect_timeout.min(left)) {
                Ok(stream) => {
                    let tick = Some(TICK.min(self.timeout));
                    let set = stream
                        .set_nodelay(true)
                        .and_then(|()| stream.set_read_timeout(tick))
                        .and_then(|()| stream.set_write_timeout(tick));
                    return set.map(|()| stream).map_err(|e| Failure::Error(RequestError::io("connect", &e)));
                }
                Err(e) if Instant::now() >= self.deadline => {
                    let _ = e;
                    return Err(Failure::Deadline);
                }
                Err(e) => last = RequestError::io("connect", &e),
            }
        }
        Err(Failure::Error(last))
    }

    /// After a response that ends its connection. If the server said it will close, wait
    /// (at most one [`TICK`]) for its FIN before closing our end: whoever closes first keeps the
    /// connection's TIME_WAIT entry, and on the server it does not use up the client's ephemeral
    /// ports, which thousands of short connections a second otherwise would.
    fn finish_close(mut c: Conn, server_closes: bool) {
        if server_closes && c.start == c.end {
            let mut byte = [0u8; 1];
            let _ = c.stream.read(&mut byte);
        }
    }

    /// What to do when a read or write would block: go on waiting, or give up.
    fn waited(&self, sent: Instant) -> Result<(), Failure> {
        let now = Instant::now();
        if now >= self.deadline {
            Err(Failure::Deadline)
        } else if now.duration_since(sent) >= self.timeout {
            Err(Failure::Error(RequestError::new(
                ErrorKind::Timeout,
                format!("no complete response within {:.1}s", self.timeout.as_secs_f64()),
            )))
        } else {
            Ok(())
        }
    }

    /// One read into `into`, retried on interruption and on the [`TICK`] timeout until the
    /// request's or the run's time is up. `Ok(0)` is end of stream.
    fn read(&self, stream: &mut TcpStream, into: &mut [u8], sent: Instant) -> Result<usize, Failure> {
        loop {
            match stream.read(into) {
                Ok(n) => return Ok(n),
                // A signal interrupted the call; nothing was lost.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The TICK socket timeout: look at the clock, then wait again.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.waited(sent)?;
                }
                Err(e) => return Err(Failure::Error(RequestError::io("receive", &e))),
            }
        }
    }

    /// Sends the request and reads one whole response on `c`.
    fn exchange(&self, c: &mut Conn, buf: &mut [u8], sent: Instant) -> Result<Done, Failure> {
        c.got_bytes = c.end > c.start;
        let request = &self.request[..];
        let mut written = 0;
        while written < request.len() {
            match c.stream.write(&request[written..]) {
                Ok(0) => {
                    return Err(Failure::Error(RequestError::new(
                        ErrorKind::Closed,
                        "send: connection closed",
                    )));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.waited(sent)?;
                }
                Err(e) => return Err(Failure::Error(RequestError::io("send", &e))),
            }
        }

        let mut bytes = 0u64;
        // The head: parse what is buffered; if it is partial, read more after it.
        let (status, head_len, content_length, close) = loop {
            if c.end > c.start {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&buf[c.start..c.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = resp.code.unwrap_or(0);
                        // A 1xx (not 101) is an interim head; the real one follows.
                        if (100..200).contains(&status) && status != 101 {
                            c.start += len;
                            continue;
                        }
                        let (length, close) = head_facts(&resp).map_err(Failure::Error)?;
                        break (status, len, length, close);
                    }
                    // Partial is a state, not an error: read more.
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => {
                        return Err(Failure::Error(RequestError::new(
                            ErrorKind::BadResponse,
                            format!("not an HTTP response ({e})"),
                        )));
                    }
                }
            }
            if c.start == c.end {
                (c.start, c.end) = (0, 0);
            } else if c.end == buf.len() {
                if c.start == 0 {
                    return Err(Failure::Error(RequestError::new(
                        ErrorKind::BadResponse,
                        format!("response head longer than {} bytes", buf.len()),
                    )));
                }
                // Move the partial head to the front to make room.
                buf.copy_within(c.start..c.end, 0);
                (c.start, c.end) = (0, c.end - c.start);
            }
            let got = self.read(&mut c.stream, &mut buf[c.end..], sent)?;
            if got == 0 {
                let msg = if c.got_bytes {
                    format!("connection closed after {} bytes, inside the response head", c.end - c.start)
                } else {
                    "connection closed before any response".to_string()
                };
                return Err(Failure::Error(RequestError::new(ErrorKind::Closed, msg)));
            }
            c.got_bytes = true;
            c.end += got;
            bytes += got as u64;
        };
        c.start += head_len;

        // The body: skip what is buffered, then read and forget the rest.
        let expected = if matches!(status, 204 | 304) { Some(0) } else { content_length };
        let Some(expected) = expected else {
            // No length: the body ends when the server closes. Fine for one request per
            // connection, and the connection is done either way.
            loop {
                (c.start, c.end) = (0, 0);
                let got = self.read(&mut c.stream, buf, sent)?;
                if got == 0 {
                    return Ok(Done { status, bytes, close: true });
                }
                bytes += got as u64;
            }
        };
        let buffered = (c.end - c.start) as u64;
        let mut remaining = expected.saturating_sub(buffered);
        c.start += usize::try_from(expected.min(buffered)).unwrap_or(0);
        if c.start == c.end {
            (c.start, c.end) = (0, 0);
        }
        while remaining > 0 {
            let got = self.read(&mut c.stream, buf, sent)?;
            if got == 0 {
                return Err(Failure::Error(RequestError::new(
                    ErrorKind::Closed,
                    format!("connection closed after {} of {expected} body bytes", expected - remaining),
                )));
            }
            bytes += got as u64;
            let got = got as u64;
            if got > remaining {
                // Bytes past this body belong to the next response: keep them.
                (c.start, c.end) = (usize::try_from(remaining).unwrap_or(0), got as usize);
                remaining = 0;
            } else {
                remaining -= got;
            }
        }
        Ok(Done { status, bytes, close })
    }
}

/// From a response head: its `Content-Length` (if any) and whether the server will close the
/// connection after it (`Connection: close`, or HTTP/1.0 without `keep-alive`).
fn head_facts(resp: &httparse::Response<'_, '_>) -> Result<(Option<u64>, bool), RequestError> {
    let mut length = None;
    let mut close = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            let n = value.parse::<u64>().map_err(|_| {
                RequestError::new(ErrorKind::BadResponse, format!("invalid Content-Length {value:?}"))
            })?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let says = |word: &str| {
                h.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(word.as_bytes()))
            };
            if says("close") {
                close = Some(true);
            } else if says("keep-alive") {
                close = close.or(Some(false));
            }
        }
    }
    let close = close.unwrap_or(resp.version == Some(0));
    Ok((length, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8000/hello").unwrap()
    }

    #[test]
    fn requests_are_built_once_per_mode() {
        let keep = String::from_utf8(request_bytes(&url(), true)).unwrap();
        assert!(keep.starts_with("GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"));
        assert!(!keep.contains("Connection"));
        assert!(keep.ends_with("\r\n\r\n"));
        let close = String::from_utf8(request_bytes(&url(), false)).unwrap();
        assert!(close.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn limits_and_caps() {
        let base = LoadConfig::new(url());
        assert_eq!(base.time_limit(), DEFAULT_DURATION);
        assert_eq!((base.request_limit(), base.connection_count()), (None, DEFAULT_CONNECTIONS));
        assert_eq!(base.limits_text(), "10 s");
        let counted = LoadConfig { requests: Some(500), ..base.clone() };
        assert_eq!((counted.time_limit(), counted.limits_text().as_str()), (MAX_DURATION, "500 requests"));
        let both =
            LoadConfig { requests: Some(5), duration: Some(Duration::from_millis(1500)), ..base.clone() };
        assert_eq!(both.limits_text(), "5 requests or 1.5 s, whichever comes first");
        assert_eq!(both.connection_count(), 5, "no more connections than requests");
        let huge = LoadConfig {
            connections: usize::MAX,
            requests: Some(u64::MAX),
            duration: Some(Duration::from_secs(1 << 40)),
            ..base.clone()
        };
        assert_eq!(huge.time_limit(), MAX_DURATION);
        assert_eq!(huge.request_limit(), Some(MAX_REQUESTS));
        assert_eq!(huge.connection_count(), MAX_CONNECTIONS);
        assert_eq!(LoadConfig { connections: 0, ..base }.connection_count(), 1);
    }

    #[test]
    fn head_facts_read_length_and_close() {
        let table: &[(&[u8], Option<u64>, bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n", Some(14), false),
            (b"HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 0\r\n\r\n", Some(0), true),
            (b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\n\r\n", None, true),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", Some(3), true),
            (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", None, false),
        ];
        for &(head, length, close) in table {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut headers);
            assert!(resp.parse(head).unwrap().is_complete());
            assert_eq!(head_facts(&resp).unwrap(), (length, close), "{}", String::from_utf8_lossy(head));
        }
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n").unwrap();
        assert_eq!(head_facts(&resp).unwrap_err().kind, ErrorKind::BadResponse);
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
