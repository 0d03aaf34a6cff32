//! Running a load: the connection threads (blocking, one per connection) and the tallies they
//! count into; the event-loop threads are in [`event_loop`](super::event_loop).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{LoadConfig, PROGRESS_INTERVAL, Threads};
use super::render::per_sec;
use super::render::{LoadReport, Progress};
use super::series::{Sampler, Throughput};
use socket2::{SockAddr, Socket};

use crate::client::connect;
use crate::client::fire::{ErrorKind, RequestError};
use crate::client::histogram::Histogram;
use crate::client::url::Url;

mod event_loop;

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
        url: connect::target_text(&cfg.url, cfg.unix.as_deref()),
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
        throughput: Throughput::default(),
    };
    if cfg.request_limit() == Some(0) {
        return report;
    }
    // Resolve once: the resolver is not what we measure.
    let addrs = match connect::resolve(&cfg.url, cfg.unix.as_deref()) {
        Ok(addrs) if !addrs.is_empty() => Arc::new(addrs),
        Ok(_) => {
            let e = RequestError::new(ErrorKind::Other, "resolve: no address for the host");
            report.errors = vec![(e.kind, 1)];
            report.error_examples = vec![e];
            return report;
        }
        Err(e) => {
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
    let mut sampler = Sampler::new();
    loop {
        // Wake for whichever is due first: a throughput sample or the progress line.
        let wake = next.min(start + sampler.due());
        match alive_rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            // Every thread has finished.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            // Nobody sends; a message would mean nothing.
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if now >= start + sampler.due() {
                    // Only the counts, not the histograms: one short lock per thread.
                    let total: u64 = tallies.iter().map(|t| lock(t).latency.count()).sum();
                    sampler.sample(total);
                }
                if now < next {
                    continue;
                }
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
    report.throughput = sampler.finish(total.latency.count(), report.elapsed);
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
    /// TCP addresses, or one Unix socket path.
    addrs: Arc<Vec<SockAddr>>,
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
    stream: Socket,
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

    /// Opens a connection (TCP ones with `TCP_NODELAY`) with the [`TICK`] socket timeouts. A
    /// connect never outlasts the run.
    fn connect(&self) -> Result<Socket, Failure> {
        let mut last = RequestError::new(ErrorKind::Other, "connect: no address to connect to");
        for addr in self.addrs.iter() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Deadline);
            }
            match connect::blocking(addr, self.connect_timeout.min(left)) {
                Ok(stream) => {
                    let tick = Some(TICK.min(self.timeout));
                    let set = stream.set_read_timeout(tick).and_then(|()| stream.set_write_timeout(tick));
                    return set.map(|()| stream).map_err(|e| Failure::Error(RequestError::io("connect", &e)));
                }
                Err(_) if Instant::now() >= self.deadline => return Err(Failure::Deadline),
                Err(e) => last = e,
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
    fn read(&self, stream: &mut Socket, into: &mut [u8], sent: Instant) -> Result<usize, Failure> {
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

    /// Both threading models against a keep-alive HTTP server on a Unix socket, and with
    /// `--close`.
    #[test]
    fn load_over_a_unix_socket() {
        use crate::client::testing::{TempDir, unix_http};
        let dir = TempDir::new("load-unix");
        let path = dir.0.join("http.sock");
        unix_http(&path);
        for threads in [Threads::EventLoops(2), Threads::PerConnection] {
            for keep_alive in [true, false] {
                let cfg = LoadConfig {
                    connections: 4,
                    threads,
                    requests: Some(40),
                    keep_alive,
                    unix: Some(path.clone()),
                    ..LoadConfig::new(Url::parse("http://localhost/hello").unwrap())
                };
                let report = load(&cfg);
                let says = format!("{threads:?} keep_alive {keep_alive}: {report}");
                assert_eq!((report.latency.count(), report.error_count()), (40, 0), "{says}");
                assert_eq!(report.status_count(200), 40, "{says}");
                // Kept alive, each connection is opened once (a blocking thread that starts late
                // may find every request already claimed); closed, once per request.
                let opened = if keep_alive { 1..=4 } else { 40..=40 };
                assert!(opened.contains(&report.connects), "{says}");
                assert!(report.to_string().contains(" over "), "{says}");
            }
        }
    }

    #[test]
    fn load_at_a_missing_unix_socket_counts_refused_requests() {
        use crate::client::testing::TempDir;
        let dir = TempDir::new("load-unix-missing");
        for threads in [Threads::EventLoops(1), Threads::PerConnection] {
            let cfg = LoadConfig {
                connections: 2,
                threads,
                requests: Some(6),
                unix: Some(dir.0.join("none.sock")),
                ..LoadConfig::new(Url::parse("http://localhost/hello").unwrap())
            };
            let report = load(&cfg);
            assert_eq!(report.errors, vec![(ErrorKind::Refused, 6)], "{threads:?}: {report}");
            assert!(report.to_string().contains("first refused: connect: no such file"), "{report}");
        }
    }

    /// A queue of one, served one connection at a time: most connects find it full and must
    /// wait for room (the event loop's `Backlogged`, the blocking connect's SO_SNDTIMEO).
    #[test]
    fn load_waits_for_room_in_a_full_unix_backlog() {
        use crate::client::testing::{TempDir, unix_http_backlog_of_one};
        let dir = TempDir::new("load-unix-backlog");
        let path = dir.0.join("one.sock");
        let _listener = unix_http_backlog_of_one(&path, true);
        for threads in [Threads::EventLoops(1), Threads::PerConnection] {
            let cfg = LoadConfig {
                connections: 4,
                threads,
                requests: Some(30),
                keep_alive: false,
                unix: Some(path.clone()),
                ..LoadConfig::new(Url::parse("http://localhost/hello").unwrap())
            };
            let report = load(&cfg);
            assert_eq!((report.latency.count(), report.error_count()), (30, 0), "{threads:?}: {report}");
        }
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
}
