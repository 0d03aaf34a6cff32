//! A gateway: an I/O-bound front server that forwards each request to one of N backend servers,
//! round robin, and retries on the next backend when one fails (a tiny nginx `upstream`).
//!
//! Run the scripted demo (about 5 s; three backends are started and stopped by the example):
//!     cargo run --example gateway -- --demo
//!
//! Or run it as a server and play:
//!     cargo run --example gateway                        # port 8000, 3 backends it starts itself
//!     cargo run --example gateway -- --backend 127.0.0.1:8001 --backend 127.0.0.1:8002
//! then, in a second terminal:
//!     cargo run --example client -- -n 9 http://127.0.0.1:8000/delay?s=0.2
//!     kill <pid of backend 2>                            # the gateway printed the pids
//!     cargo run --example client -- -n 9 http://127.0.0.1:8000/delay?s=0.2
//!
//! What to look for:
//! * The replies carry the *backend's* `X-Pid`, so the client's timeline shows three processes:
//!   the gateway passes the backend's trace headers through and adds `X-Backend`.
//! * After `kill`, every request still gets a 200. The gateway logs
//!   `retry: backend 2 ... failed: connect: Connection refused ...; trying backend 3`, then marks
//!   backend 2 down for a few seconds and stops trying it (nginx's `max_fails`/`fail_timeout`).
//!   Backend 3 takes backend 2's share: a retry moves load to the neighbour.
//! * Only requests that got *no* answer are retried: a GET is safe to send twice, and a backend
//!   that answered (even 500) has spoken. With every backend dead the client gets 502.
//!
//! The gateway spends its time waiting on backends, not computing, so a thread per request is the
//! right shape. The backends are this program re-executed with `--serve` (the threaded example
//! server); Ctrl-C stops the gateway, then each backend it started, and reaps them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use course::app::{self, Kind};
use course::client::{FireConfig, Url, fire};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use socketserver::http::{HttpHandler, Request, Response};
use socketserver::{Server, Threading, shutdown_on_signals};

const USAGE: &str = "\
usage: cargo run --example gateway -- [options]
       cargo run --example gateway -- --demo [-n N]

  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port (default 8000; 0 picks a free one)
  --backends N         start N backend servers as child processes (default 3, at most 16)
  --backend HOST:PORT  use this backend instead (repeat for more); none are started
  --retries R          tries on other backends after a failure, 0 to 8 (default 2)
  --quiet              no log line per request
  --demo               start 3 backends, fire -n requests, kill one, fire -n more, print counts
  -n N                 requests per round in --demo, 1 to 200 (default 9)
  -h, --help           this text

internal: --serve [server options]   run as a backend (the threaded example server)";

/// How long a backend that failed is skipped before it is tried again.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// One backend and what the gateway has seen of it.
struct Backend {
    addr: SocketAddr,
    pid: Option<u32>,
    served: AtomicU64,
    failed: AtomicU64,
    down_until: Mutex<Option<Instant>>,
}

impl Backend {
    fn is_down(&self) -> bool {
        let until = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn name(&self, i: usize) -> String {
        match self.pid {
            Some(pid) => format!("backend {} ({}, pid {pid})", i + 1, self.addr),
            None => format!("backend {} ({})", i + 1, self.addr),
        }
    }
}

/// The gateway's state, shared by its request threads.
struct Gateway {
    backends: Vec<Backend>,
    next: AtomicUsize,
    retries: usize,
    retried: AtomicU64,
}

impl Gateway {
    fn new(backends: &[(SocketAddr, Option<u32>)], retries: usize) -> Gateway {
        let backends = backends
            .iter()
            .map(|&(addr, pid)| Backend {
                addr,
                pid,
                served: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                down_until: Mutex::new(None),
            })
            .collect();
        Gateway { backends, next: AtomicUsize::new(0), retries, retried: AtomicU64::new(0) }
    }

    /// Round robin from the next backend, skipping those marked down; on a failure, marks the
    /// backend down and tries the next one, at most `retries` more times.
    fn forward(&self, req: &Request) -> Response {
        if !matches!(req.method(), "GET" | "HEAD") {
            return Response::text(405, "the gateway forwards GET and HEAD only\n")
                .with_header("Allow", "GET, HEAD");
        }
        let n = self.backends.len();
        let mut i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // Skip backends marked down, unless all are: then try anyway (one may be back).
        for _ in 0..n {
            if !self.backends[i].is_down() {
                break;
            }
            i = (i + 1) % n;
        }
        let mut last_error = String::new();
        for attempt in 0..=self.retries {
            let b = &self.backends[i];
            match proxy(b.addr, req.method(), req.target()) {
                Ok(resp) => {
                    b.served.fetch_add(1, Ordering::Relaxed);
                    return resp.with_header("X-Backend", b.addr.to_string());
                }
                Err(e) => {
                    b.failed.fetch_add(1, Ordering::Relaxed);
                    *b.down_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + DOWN_FOR);
                    let j = (i + 1) % n;
                    if attempt < self.retries {
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        log::warn!("retry: {} failed: {e}; trying backend {}", b.name(i), j + 1);
                    } else {
                        log::warn!("{} failed: {e}; no retries left", b.name(i));
                    }
                    last_error = e;
                    i = j;
                }
            }
        }
        Response::text(502, format!("bad gateway: no backend answered (last: {last_error})\n"))
    }
}

/// Sends `METHOD target` to `addr` over a fresh connection (`Connection: close`), reads the whole
/// answer, and turns it into a [`Response`] with the backend's status, body and trace headers.
/// An error means no answer at all: only then may the caller retry.
fn proxy(addr: SocketAddr, method: &str, target: &str) -> Result<Response, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| format!("connect: {e}"))?;
    // /delay may take up to 60 s; give a slow backend that long and a little more.
    let _ = s.set_read_timeout(Some(Duration::from_secs(65)));
    write!(s, "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("receive: {e}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("closed before a whole response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let mut resp = Response::new(status).with_body(raw[split + 4..].to_vec());
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            // Pass through what says who served it; the gateway writes its own Date, Server,
            // Content-Length.
            if ["x-pid", "x-tid", "content-type"].contains(&name.trim().to_ascii_lowercase().as_str()) {
                resp = resp.with_header(name.trim(), value.trim());
            }
        }
    }
    Ok(resp)
}

/// A backend started by the gateway: this program with `--serve`.
struct BackendChild {
    child: Child,
    addr: SocketAddr,
    // Kept open, not drained by a thread: a backend writes only its banner to stdout, and the
    // gateway must start no thread before it blocks its signals (see `serve`).
    _stdout: BufReader<ChildStdout>,
}

impl BackendChild {
    fn start() -> Result<BackendChild, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--serve", "--port", "0", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a backend: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        match app::parse_banner(line.trim_end()) {
            Some(addr) => Ok(BackendChild { child, addr, _stdout: out }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("a backend did not start (said {line:?})"))
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as `kill PID` sends: the backend finishes what it is doing and exits; reaped here.
    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BackendChild {
    fn drop(&mut self) {
        self.terminate();
    }
}

struct Options {
    host: String,
    port: u16,
    start_backends: usize,
    given: Vec<SocketAddr>,
    retries: usize,
    quiet: bool,
    demo: bool,
    n: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 8000,
        start_backends: 3,
        given: Vec::new(),
        retries: 2,
        quiet: false,
        demo: false,
        n: 9,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--host" => o.host = value()?,
            "--port" => o.port = value()?.parse().map_err(|_| "--port needs a port number")?,
            "--backends" => o.start_backends = app::bounded(&arg, value().ok(), 1..=16, "a whole number")?,
            "--backend" => {
                o.given.push(value()?.parse().map_err(|_| "--backend needs HOST:PORT, like 127.0.0.1:8001")?)
            }
            "--retries" => o.retries = app::bounded(&arg, value().ok(), 0..=8, "a whole number")?,
            "-n" => o.n = app::bounded(&arg, value().ok(), 1..=200, "a whole number")?,
            "--quiet" => o.quiet = true,
            "--demo" => o.demo = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--serve") {
        args.next();
        // A backend: if the gateway dies, even by kill -9, take this process down with it.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
        return app::run(Kind::Threading, args);
    }
    let o = match app::options_or_exit(parse(args), USAGE) {
        Ok(o) => o,
        Err(code) => return code,
    };
    app::init_logging();
    let result = if o.demo { demo(&o) } else { serve(&o) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `n` backends, printing their pids.
fn start_backends(n: usize) -> Result<Vec<BackendChild>, String> {
    let mut v = Vec::new();
    for i in 0..n {
        let b = BackendChild::start()?; // on error, those already started are dropped: reaped
        log::info!("backend {}: pid {}, http://{}/", i + 1, b.pid(), b.addr);
        v.push(b);
    }
    Ok(v)
}

fn serve(o: &Options) -> Result<(), String> {
    let started = if o.given.is_empty() { start_backends(o.start_backends)? } else { Vec::new() };
    let list: Vec<(SocketAddr, Option<u32>)> = if o.given.is_empty() {
        started.iter().map(|b| (b.addr, Some(b.pid()))).collect()
    } else {
        o.given.iter().map(|&a| (a, None)).collect()
    };
    let gw = Arc::new(Gateway::new(&list, o.retries));
    let g = Arc::clone(&gw);
    let handler =
        HttpHandler::new(move |req: &Request| g.forward(req)).trace_headers(false).log_requests(!o.quiet);
    let mut server =
        Server::bind((o.host.as_str(), o.port), Threading::new(), handler).map_err(|e| e.to_string())?;
    // From here SIGINT/SIGTERM run the crate's signal handler, which wakes serve_forever for a
    // graceful stop. Command resets signal dispositions in the children it execs, so the
    // backends still stop on their own SIGTERM.
    shutdown_on_signals(server.shutdown_handle()).map_err(|e| e.to_string())?;
    println!("{}", app::banner(&server.local_addr()));
    let _ = std::io::stdout().flush();
    log::info!("gateway, round robin over {} backends, {} retries; Ctrl-C stops it", list.len(), o.retries);
    server.serve_forever().map_err(|e| e.to_string())?;
    server.server_close();
    drop(started); // SIGTERM each backend we started, and reap it
    for (i, b) in gw.backends.iter().enumerate() {
        log::info!(
            "{}: {} answered, {} failed",
            b.name(i),
            b.served.load(Ordering::Relaxed),
            b.failed.load(Ordering::Relaxed)
        );
    }
    log::info!("stopped: every backend we started is reaped");
    Ok(())
}

fn demo(o: &Options) -> Result<(), String> {
    let t0 = Instant::now();
    let mut backends = start_backends(3)?;
    let list: Vec<_> = backends.iter().map(|b| (b.addr, Some(b.pid()))).collect();
    let gw = Arc::new(Gateway::new(&list, o.retries));
    let g = Arc::clone(&gw);
    let handler =
        HttpHandler::new(move |req: &Request| g.forward(req)).trace_headers(false).log_requests(false);
    let mut server = Server::bind("127.0.0.1:0", Threading::new(), handler).map_err(|e| e.to_string())?;
    let (addr, stop) = (server.local_addr().as_inet().expect("a TCP server"), server.shutdown_handle());
    let serving = thread::spawn(move || {
        let _ = server.serve_forever();
        server.server_close();
    });
    log::info!("gateway on http://{addr}/, {} retries", o.retries);
    let url = Url::parse(&format!("http://{addr}/delay?s=0.1")).map_err(|e| e.to_string())?;

    let snapshot =
        |gw: &Gateway| gw.backends.iter().map(|b| b.served.load(Ordering::Relaxed)).collect::<Vec<_>>();
    let round = |label: &str| {
        let r = fire(&FireConfig::new(o.n, url.clone()));
        let ok = r.outcomes.iter().filter(|x| matches!(&x.result, Ok(r) if r.status == 200)).count();
        log::info!(
            "{label}: {} requests, {ok} got 200, {} backend pids in X-Pid, {:.2} s",
            o.n,
            r.distinct_pids(),
            r.wall
        );
        ok
    };
    let ok1 = round("round 1");
    let after1 = snapshot(&gw);
    let victim = backends[1].pid();
    log::info!("kill {victim}   (backend 2)");
    backends[1].terminate();
    let ok2 = round("round 2");
    let after2 = snapshot(&gw);
    let _ = stop.shutdown();
    let _ = serving.join();
    drop(backends);

    println!("\n{:<10} {:>8} {:>9} {:>9} {:>8}", "backend", "pid", "round 1", "round 2", "failed");
    for (i, b) in gw.backends.iter().enumerate() {
        let pid = b.pid.map_or("-".into(), |p| p.to_string());
        let dead = if i == 1 { " (killed after round 1)" } else { "" };
        let failed = b.failed.load(Ordering::Relaxed);
        println!(
            "{:<10} {:>8} {:>9} {:>9} {:>8}{dead}",
            i + 1,
            pid,
            after1[i],
            after2[i] - after1[i],
            failed
        );
    }
    println!(
        "\nretries: {}; the client got 200 for {} of {} requests. 2 cores; figures vary. Done in {:.1} s.",
        gw.retried.load(Ordering::Relaxed),
        ok1 + ok2,
        2 * o.n,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
