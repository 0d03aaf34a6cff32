//! What the minimal servers share: arguments, the banner, one blocking connection ([`handle`]) and one
//! non-blocking one ([`NbConn`]).
//!
//! These servers exist to measure the *limit* of each concurrency model: how fast a sequential,
//! threaded, forking, pooled or pre-forked server can be when it does nothing but the model.
//! The difference between one of them and the matching `socketserver` example is the price of
//! the library (its validation, limits, timeouts, logging hooks, graceful shutdown).
//!
//! What they deliberately skip, and why that is part of why they are fast:
//! - **No validation.** A request is whatever comes before `\r\n\r\n`. The method is ignored,
//!   the version is sniffed, headers are not parsed beyond a case-insensitive search for
//!   `connection: close`, and a body is never read (a request with one desynchronises the
//!   connection). No size limits beyond "the buffer is full, close".
//! - **No timeouts.** A client that opens a connection and sends nothing pins a thread (or the
//!   whole sequential server) forever: slowloris, unmitigated.
//! - **No graceful shutdown.** SIGINT/SIGTERM keep their default action: the process dies with
//!   requests in flight.
//! - **No logging.**
//!
//! What they keep, so that the comparison is fair: the same response bytes as the HTTP layer
//! of `socketserver` for `/hello` (same header names in the same order, real `X-Pid`, `X-Tid`,
//! `X-Start`, `X-Elapsed` values, the same `Date` format and the same `Server` value, so the
//! byte count is identical), keep-alive for HTTP/1.1, `TCP_NODELAY`, one `write` per response,
//! one reused buffer per connection handler, and a listen backlog of `SOMAXCONN`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `Server` header value: the same bytes `socketserver` sends, so both responses have the
/// same length and the comparison measures code, not bytes.
pub const SERVER: &str = "socketserver/0.1.0";

/// Bytes a request head may take. A head longer than this closes the connection.
pub const BUF: usize = 8 * 1024;

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the server started (`X-Start` counts from here; forked children inherit it).
pub fn offset(at: Instant) -> f64 {
    at.saturating_duration_since(*START.get_or_init(Instant::now)).as_secs_f64()
}

/// The command line every minimal server takes: `--port P` plus one count (`--threads N` or
/// `--workers N`, named by `count_flag`), with its default.
pub struct Args {
    /// `--port` (0 lets the kernel choose).
    pub port: u16,
    /// The value of `count_flag`.
    pub count: usize,
}

/// Parses `--port P`, `count_flag N` and ignores `--quiet` (there is no logging to silence;
/// accepted so a benchmark script can start every server with the same flags).
pub fn args(count_flag: &str, default_count: usize) -> Args {
    let mut out = Args { port: 8000, count: default_count };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" | "-p" => {
                out.port = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage(count_flag))
            }
            "--quiet" | "-q" => {}
            f if f == count_flag => {
                out.count = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage(count_flag))
            }
            _ => usage(count_flag),
        }
    }
    out
}

fn usage(count_flag: &str) -> ! {
    eprintln!("usage: {} [--port P] [--quiet] [{count_flag} N]", std::env::args().next().unwrap_or_default());
    std::process::exit(2)
}

/// Binds 127.0.0.1:`port`, raises the backlog to `SOMAXCONN`, prints the banner (flushed) and
/// returns the listener.
pub fn bind(port: u16) -> TcpListener {
    START.get_or_init(Instant::now);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("bind 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    // std listens with a backlog of 128; a burst of 1000 connections would overflow it and
    // the kernel would drop SYNs (clients retry after 1 s). Calling listen(2) again on a
    // listening socket just updates the backlog on Linux. SAFETY: a valid socket fd we own.
    unsafe { libc::listen(listener.as_raw_fd(), libc::SOMAXCONN) };
    let p = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    println!("Serving HTTP on 127.0.0.1 port {p} (http://127.0.0.1:{p}/) ...");
    let _ = io::stdout().flush();
    listener
}

/// The two buffers a connection handler needs; reuse one per thread/process.
pub struct Buffers {
    inp: Vec<u8>,
    out: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers { inp: vec![0; BUF], out: Vec::with_capacity(1024) }
    }
}

/// Serves one connection to completion: requests until the client closes, asks for
/// `Connection: close`, speaks HTTP/1.0, or an error happens. Pipelined requests are answered
/// in order.
pub fn handle(mut stream: TcpStream, b: &mut Buffers) {
    let _ = stream.set_nodelay(true);
    let mut filled = 0;
    loop {
        // Answer every complete request already in the buffer before reading again.
        let Some(end) = find_head_end(&b.inp[..filled]) else {
            if filled == b.inp.len() {
                return; // head too large: no 431, just close (no validation, see the crate docs)
            }
            match stream.read(&mut b.inp[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            }
            continue;
        };
        b.out.clear();
        let keep = respond(&b.inp[..end], &mut b.out);
        if stream.write_all(&b.out).is_err() || !keep {
            return;
        }
        b.inp.copy_within(end..filled, 0);
        filled -= end;
    }
}

/// Answers every complete request head at the start of `inp`, appending the responses to
/// `out`: the sans-IO half of [`handle`], for a server that does its own (non-blocking) I/O.
/// Returns how many bytes of `inp` were consumed and whether to keep the connection after the
/// responses are written (`false` once a request asked to close; later input is ignored).
pub fn answer(inp: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    let mut used = 0;
    while let Some(end) = find_head_end(&inp[used..]) {
        let keep = respond(&inp[used..used + end], out);
        used += end;
        if !keep {
            return (used, false);
        }
    }
    (used, true)
}

/// Prints what failed and exits with status 1: for set-up that a benchmark cannot go on without.
pub fn fail(what: &str, e: io::Error) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1)
}

/// `epoll_ctl(ep, op, fd)` with `events` and `token` as the event's data.
pub fn ctl(ep: RawFd, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: the caller's epoll descriptor and an event valid for the call's duration; the
    // kernel checks both descriptors and reports a bad one as an error.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A new epoll set with `listener` in it, level-triggered and `EPOLLEXCLUSIVE` (of the threads
/// or loops waiting on it, a new connection wakes one), its events carrying `token`. Exits on
/// failure.
pub fn epoll_with_listener(listener: &TcpListener, token: u64) -> RawFd {
    // SAFETY: no preconditions; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        fail("epoll_create1", io::Error::last_os_error());
    }
    let exclusive = (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32;
    if let Err(e) = ctl(ep, libc::EPOLL_CTL_ADD, listener.as_raw_fd(), exclusive, token) {
        fail("epoll_ctl(listener)", e);
    }
    ep
}

/// One connection of a non-blocking (epoll) server: its input buffer, its pending output and
/// whether to close after it, the state machine of chapter 13 reduced to three fields. Shared
/// by `min_epoll` (a loop per thread) and `min_oneshot` (one epoll set for all threads).
pub struct NbConn {
    stream: TcpStream,
    inp: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
    written: usize,
    /// A request asked to close: close once `out` is written.
    closing: bool,
}

impl NbConn {
    /// A connection just accepted (non-blocking already), with `TCP_NODELAY` set.
    pub fn new(stream: TcpStream) -> NbConn {
        let _ = stream.set_nodelay(true);
        NbConn {
            stream,
            inp: vec![0; BUF],
            filled: 0,
            out: Vec::with_capacity(1024),
            written: 0,
            closing: false,
        }
    }

    /// Whether output is left to write (the socket's buffer was full): wait for `EPOLLOUT`.
    pub fn wants_out(&self) -> bool {
        self.written < self.out.len()
    }

    /// Reads what is there (if `readable`), answers every complete request, writes what it can.
    /// Returns whether to keep the connection.
    pub fn serve(&mut self, readable: bool) -> bool {
        if readable && !self.closing {
            loop {
                if self.filled == self.inp.len() {
                    return false; // head too large: close (no 431, see the crate docs)
                }
                match self.stream.read(&mut self.inp[self.filled..]) {
                    Ok(0) => return false,
                    Ok(n) => self.filled += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            // Start a fresh output buffer only when the last one is all written: pipelined
            // answers keep their order.
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
            }
            let (used, keep) = answer(&self.inp[..self.filled], &mut self.out);
            self.inp.copy_within(used..self.filled, 0);
            self.filled -= used;
            self.closing = !keep;
        }
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        !self.closing
    }
}

/// The index just past the `\r\n\r\n` ending the first request head, if there is one.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Appends the answer to `head` to `out`; returns whether to keep the connection.
fn respond(head: &[u8], out: &mut Vec<u8>) -> bool {
    let started = Instant::now();
    let line_end = head.iter().position(|&c| c == b'\r').unwrap_or(head.len());
    let line = &head[..line_end];
    let mut parts = line.split(|&c| c == b' ');
    let _method = parts.next();
    let target = parts.next().unwrap_or(b"/");
    let http10 = parts.next() == Some(b"HTTP/1.0");
    let keep = !http10 && !contains_ci(&head[line_end..], b"connection: close");
    let (path, query) = match target.iter().position(|&c| c == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };

    // `Vec::new()` does not allocate: /hello answers from a static slice and allocates nothing.
    let mut dynamic = Vec::new();
    let mut body: &[u8] = &[];
    let status: &str = match path {
        b"/hello" => {
            body = b"Hello, world!\n";
            "200 OK"
        }
        b"/delay" => {
            let s = param(query, b"s").unwrap_or(1.0).clamp(0.0, 60.0);
            std::thread::sleep(Duration::from_secs_f64(s));
            let _ = writeln!(dynamic, "slept {s:.3} s in pid {} tid {}", std::process::id(), tid());
            "200 OK"
        }
        b"/cpu" => {
            let ms = param(query, b"ms").unwrap_or(100.0).clamp(0.0, 60_000.0);
            let until = started + Duration::from_secs_f64(ms / 1000.0);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            while Instant::now() < until {
                for _ in 0..1024 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x = std::hint::black_box(x);
                }
            }
            let _ = writeln!(dynamic, "burned {ms} ms of CPU in pid {} tid {}", std::process::id(), tid());
            "200 OK"
        }
        _ => {
            dynamic.extend_from_slice(b"no such endpoint: ");
            dynamic.extend_from_slice(path);
            dynamic.extend_from_slice(b"\nGET / lists them\n");
            "404 Not Found"
        }
    };
    if !dynamic.is_empty() {
        body = &dynamic;
    }
    let elapsed = started.elapsed().as_secs_f64();

    // The header order of socketserver's HTTP layer: service headers (Content-Type), Date,
    // Server, Content-Length, Connection (only when closing), then the trace headers.
    let _ = write!(out, "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nDate: ");
    with_date(|d| out.extend_from_slice(d));
    let _ = write!(out, "\r\nServer: {SERVER}\r\nContent-Length: {}\r\n", body.len());
    if !keep {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let _ = write!(
        out,
        "X-Pid: {}\r\nX-Tid: {}\r\nX-Start: {:.6}\r\nX-Elapsed: {elapsed:.6}\r\n\r\n",
        std::process::id(),
        tid(),
        offset(started),
    );
    out.extend_from_slice(body);
    keep
}

/// This thread's OS thread id (`gettid`), the `X-Tid` value.
pub fn tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// `key=value` from a query string, as a number.
fn param(query: &[u8], key: &[u8]) -> Option<f64> {
    query.split(|&c| c == b'&').find_map(|kv| {
        let v = kv.strip_prefix(key)?.strip_prefix(b"=")?;
        std::str::from_utf8(v).ok()?.parse().ok()
    })
}

/// ASCII case-insensitive substring search (`needle` is lower case).
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

thread_local! {
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Calls `f` with the current IMF-fixdate (`Tue, 24 Nov 2026 05:46:16 GMT`), formatted at most
/// once per second per thread, as socketserver does.
fn with_date(f: impl FnOnce(&[u8])) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    DATE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.0 = secs;
            let s = http_date(secs);
            c.1.copy_from_slice(&s.as_bytes()[..29]);
        }
        f(&c.1)
    })
}

fn http_date(secs: u64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        WD[(days + 4).rem_euclid(7) as usize],
        MO[month as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn answer_takes_every_complete_head_and_stops_after_a_close() {
        let first = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
        let second = b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n";
        let inp = [&first[..], &second[..], b"GET /hello HTTP/1.1\r\n\r\n"].concat();
        let mut out = Vec::new();
        assert_eq!(super::answer(&inp, &mut out), (first.len() + second.len(), false));
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
        assert!(text.starts_with("HTTP/1.1 200 OK") && text.contains("HTTP/1.1 404 Not Found"));
        // Half a head: nothing taken, nothing answered, the connection stays.
        let mut out = Vec::new();
        assert_eq!(super::answer(b"GET /hel", &mut out), (0, true));
        assert!(out.is_empty());
    }

    #[test]
    fn date_matches_rfc_example() {
        assert_eq!(super::http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
