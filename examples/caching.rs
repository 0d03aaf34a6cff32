//! A TTL cache in front of a slow upstream, three ways: shared by threads without a guard,
//! shared by threads with single-flight, and copied into forked processes.
//!
//! Run it (about 20 s, everything on 127.0.0.1, every server stopped and every child reaped):
//!     cargo run --example caching
//!     cargo run --example caching -- -n 16 --ttl 1 --fetch 0.2
//!
//! The example starts an *upstream*: a loopback HTTP server whose `/data?key=K` sleeps
//! `--fetch` seconds (0.5) and counts its calls, like a slow database. In front of it, a cache
//! server answers `/data?key=K` from a cache that keeps each value `--ttl` seconds (2). Each
//! scenario fires three bursts of `-n` (8) simultaneous requests for the same key with the
//! bundled client: a cold burst, a warm burst within the TTL, and one after the TTL ran out;
//! then it prints how many times the upstream was called.
//!
//! What to look for in the table:
//! * `threads, no guard`: the cold burst costs `n` upstream calls, not one. Every thread looks,
//!   misses, and fetches before any of them has stored the value (the "cache stampede").
//! * `threads, single-flight`: one call per TTL. The first miss marks the key as loading; the
//!   others wait on a Condvar for its answer instead of fetching too.
//! * `forking`: every request is a new child that starts from the parent's copy of the cache,
//!   which never learns anything, so every request is a miss: one upstream call per request,
//!   warm burst included. A guard cannot help; the processes share no memory.
//! * `prefork, 4 workers`: each worker keeps its own cache, so up to one call per worker per TTL.
//!
//! The last table is chapter 9's: a page that needs local work *and* upstream data takes the
//! sum of both when it does them one after the other, and the longer of the two when it starts
//! the fetch on a thread first (`/page?work=0.3` versus `/page?work=0.3&overlap=1`).
//!
//! The forking servers run as child processes of this one (it re-executes itself with
//! `--serve forking` or `--serve prefork`), because this process has threads, and a
//! multi-threaded process must not fork.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use course::app;
use course::client::{FireConfig, Url, fire};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use socketserver::http::{HttpHandler, Request, Response};
use socketserver::{Forking, Prefork, Server, ShutdownHandle, Threading, shutdown_on_signals};

const USAGE: &str = "\
usage: cargo run --example caching -- [-n N] [--ttl SECS] [--fetch SECS]

  -n N          requests per burst, 1 to 64 (default 8)
  --ttl SECS    how long a cached value lives, 0.2 to 10 (default 2)
  --fetch SECS  how long one upstream call takes, 0.05 to 2 (default 0.5)
  -h, --help    this text

internal (the example starts these itself):
  --serve forking|prefork --upstream HOST:PORT [--ttl SECS]";

/// How the cache behaves when a key is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Look, and on a miss fetch without telling anyone: concurrent misses all fetch.
    None,
    /// The first miss marks the key `Loading` and fetches; later misses wait for it.
    SingleFlight,
}

/// One key's state.
enum Slot {
    /// Someone is fetching it right now (single-flight only).
    Loading,
    /// A value and when it stops being fresh.
    Ready(String, Instant),
}

/// A TTL cache in front of the upstream. `Clone` is cheap: clones share the same map (threads),
/// but a forked child gets a *copy* of it, and what the child stores dies with the child.
#[derive(Clone)]
struct Cache {
    upstream: SocketAddr,
    ttl: Duration,
    guard: Guard,
    // One Condvar for the whole map: a finished fetch wakes every waiter and each checks its
    // own key again. A Condvar per key would wake fewer threads; with a handful of keys the
    // simpler shape is as good.
    map: Arc<(Mutex<HashMap<String, Slot>>, Condvar)>,
}

impl Cache {
    fn new(upstream: SocketAddr, ttl: Duration, guard: Guard) -> Cache {
        Cache { upstream, ttl, guard, map: Arc::new((Mutex::new(HashMap::new()), Condvar::new())) }
    }

    /// The value for `key` and whether it was a hit.
    fn get(&self, key: &str) -> Result<(String, bool), String> {
        let (lock, ready) = &*self.map;
        // A handler that panicked while holding the lock poisons it; the map itself is still
        // consistent (every update is one insert), so carry on with it.
        let mut map = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match map.get(key) {
                Some(Slot::Ready(v, fresh_until)) if Instant::now() < *fresh_until => {
                    return Ok((v.clone(), true));
                }
                Some(Slot::Loading) => {
                    // Another thread is fetching this key: wait for it rather than fetch too.
                    map = ready.wait(map).unwrap_or_else(|e| e.into_inner());
                }
                _ => break, // missing or stale: this thread fetches
            }
        }
        if self.guard == Guard::SingleFlight {
            map.insert(key.to_string(), Slot::Loading);
        }
        // Never hold the lock during the slow call: every other key would wait behind it.
        drop(map);
        let fetched = fetch(self.upstream, key);
        let mut map = lock.lock().unwrap_or_else(|e| e.into_inner());
        match &fetched {
            Ok(v) => {
                map.insert(key.to_string(), Slot::Ready(v.clone(), Instant::now() + self.ttl));
            }
            // A failed fetch is not cached; the waiters wake, find no slot, and one of them
            // tries again.
            Err(_) => {
                map.remove(key);
            }
        }
        ready.notify_all();
        fetched.map(|v| (v, false))
    }
}

/// One upstream call: `GET /data?key=KEY`, the body is the value.
fn fetch(upstream: SocketAddr, key: &str) -> Result<String, String> {
    http_get(upstream, &format!("/data?key={key}")).and_then(|(status, body)| match status {
        200 => Ok(body),
        s => Err(format!("upstream answered {s}")),
    })
}

/// A tiny HTTP/1.1 GET: one connection, `Connection: close`, body read to the end.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| format!("receive: {e}"))?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status code")?;
    Ok((status, body.to_string()))
}

/// The cache server's service: `/data?key=K` through the cache; `/page?work=S[&overlap=1]`
/// does `S` seconds of local work and one uncached upstream call, one after the other or
/// overlapped.
fn cache_service(cache: Cache) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    move |req: &Request| {
        let key = req.query_param("key").unwrap_or("k").to_string();
        match req.path() {
            "/data" => match cache.get(&key) {
                Ok((v, hit)) => {
                    Response::text(200, v).with_header("X-Cache", if hit { "hit" } else { "miss" })
                }
                Err(e) => Response::text(502, format!("upstream failed: {e}\n")),
            },
            "/page" => page(&cache, req),
            _ => Response::text(404, "try /data?key=k or /page?work=0.3\n"),
        }
    }
}

/// Where the time goes: local work (a sleep standing in for templates, a database) plus an
/// upstream fetch. Sequential: work + fetch. Overlapped: the fetch starts on a thread, the work
/// runs meanwhile, then we wait for the fetch: max(work, fetch).
fn page(cache: &Cache, req: &Request) -> Response {
    let work = match req.query_param("work").map(str::parse::<f64>) {
        None => 0.3,
        Some(Ok(w)) if (0.0..=5.0).contains(&w) => w,
        Some(_) => return Response::text(400, "work must be seconds from 0 to 5\n"),
    };
    let overlap = req.query_param("overlap") == Some("1");
    let upstream = cache.upstream;
    let t0 = Instant::now();
    let data = if overlap {
        let pending = thread::spawn(move || fetch(upstream, "page"));
        thread::sleep(Duration::from_secs_f64(work));
        pending.join().unwrap_or_else(|_| Err("fetch thread panicked".into()))
    } else {
        let data = fetch(upstream, "page");
        thread::sleep(Duration::from_secs_f64(work));
        data
    };
    match data {
        Ok(_) => {
            Response::text(200, format!("page in {:.3} s (overlap: {overlap})\n", t0.elapsed().as_secs_f64()))
        }
        Err(e) => Response::text(502, format!("upstream failed: {e}\n")),
    }
}

/// The upstream: a threaded loopback server; `/data` sleeps `fetch` and counts.
struct Upstream {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    stop: ShutdownHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(fetch: Duration) -> Result<Upstream, String> {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        let service = move |req: &Request| {
            thread::sleep(fetch);
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let key = req.query_param("key").unwrap_or("k");
            Response::text(200, format!("value of {key} (upstream call #{n})\n"))
        };
        let handler = HttpHandler::new(service).log_requests(false);
        let mut server = Server::bind("127.0.0.1:0", Threading::new(), handler).map_err(|e| e.to_string())?;
        let (addr, stop) = (server.local_addr().as_inet().expect("a TCP server"), server.shutdown_handle());
        let thread = thread::spawn(move || {
            let _ = server.serve_forever();
            server.server_close();
        });
        Ok(Upstream { addr, calls, stop, thread: Some(thread) })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.stop.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a scenario's cache server runs.
enum Front {
    /// In this process, on a thread.
    InProcess { stop: ShutdownHandle, thread: Option<thread::JoinHandle<()>> },
    /// A child process (this program with `--serve`).
    Child(Child),
}

struct CacheServer {
    addr: SocketAddr,
    front: Front,
}

impl CacheServer {
    fn threaded(upstream: SocketAddr, ttl: Duration, guard: Guard) -> Result<CacheServer, String> {
        let handler = HttpHandler::new(cache_service(Cache::new(upstream, ttl, guard))).log_requests(false);
        let mut server = Server::bind("127.0.0.1:0", Threading::new(), handler).map_err(|e| e.to_string())?;
        let (addr, stop) = (server.local_addr().as_inet().expect("a TCP server"), server.shutdown_handle());
        let thread = thread::spawn(move || {
            let _ = server.serve_forever();
            server.server_close();
        });
        Ok(CacheServer { addr, front: Front::InProcess { stop, thread: Some(thread) } })
    }

    fn child(kind: &str, upstream: SocketAddr, ttl: Duration) -> Result<CacheServer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
        let mut child = Command::new(exe)
            .args([
                "--serve",
                kind,
                "--upstream",
                &upstream.to_string(),
                "--ttl",
                &ttl.as_secs_f64().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the {kind} server: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        thread::spawn(move || {
            let _ = out.read_to_end(&mut Vec::new());
        });
        let mut me =
            CacheServer { addr: "127.0.0.1:1".parse().expect("literal address"), front: Front::Child(child) };
        match app::parse_banner(line.trim_end()) {
            Some(addr) => {
                me.addr = addr;
                Ok(me)
            }
            None => Err(format!("the {kind} server did not start (said {line:?})")), // Drop reaps it
        }
    }
}

impl Drop for CacheServer {
    fn drop(&mut self) {
        match &mut self.front {
            Front::InProcess { stop, thread } => {
                let _ = stop.shutdown();
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Front::Child(child) => {
                // SIGTERM: the server finishes in-flight requests and reaps its own children.
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(5) {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The child-process mode: a forking or prefork cache server on a free port.
fn serve_child(kind: &str, upstream: SocketAddr, ttl: Duration) -> ExitCode {
    let handler = || {
        HttpHandler::new(cache_service(Cache::new(upstream, ttl, Guard::SingleFlight))).log_requests(false)
    };
    let result = match kind {
        "forking" => Server::bind("127.0.0.1:0", Forking::new(), handler()).and_then(|mut server| {
            shutdown_on_signals(server.shutdown_handle())?;
            println!("{}", app::banner(&server.local_addr()));
            let _ = std::io::stdout().flush();
            server.serve_forever()?;
            server.server_close();
            Ok(())
        }),
        "prefork" => Prefork::new(4).bind("127.0.0.1:0").and_then(|master| {
            println!("{}", app::banner(&master.local_addr()));
            let _ = std::io::stdout().flush();
            master.run(handler())
        }),
        other => {
            eprintln!("error: --serve {other:?}: need forking or prefork\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fires a burst at `url`; returns the upstream calls it caused, the wall time and the
/// statuses that were not 200 (there should be none).
fn burst(n: usize, url: &Url, upstream: &Upstream) -> (u64, f64, usize) {
    let before = upstream.calls();
    let report = fire(&FireConfig::new(n, url.clone()));
    let bad = report.outcomes.iter().filter(|o| !matches!(&o.result, Ok(r) if r.status == 200)).count();
    (upstream.calls() - before, report.wall, bad)
}

struct Row {
    name: &'static str,
    calls: [u64; 3],
    wall: [f64; 3],
    failed: usize,
}

fn scenario(name: &'static str, server: CacheServer, n: usize, ttl: Duration, up: &Upstream) -> Row {
    let url = match Url::parse(&format!("http://{}/data?key=k", server.addr)) {
        Ok(u) => u,
        Err(_) => return Row { name, calls: [0; 3], wall: [0.0; 3], failed: n * 3 },
    };
    let (c1, w1, f1) = burst(n, &url, up); // cold: nothing cached
    let (c2, w2, f2) = burst(n, &url, up); // warm: within the TTL
    thread::sleep(ttl + Duration::from_millis(100)); // let the value go stale
    let (c3, w3, f3) = burst(n, &url, up); // stale: the TTL has run out
    drop(server);
    Row { name, calls: [c1, c2, c3], wall: [w1, w2, w3], failed: f1 + f2 + f3 }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut n, mut ttl, mut fetch_secs) = (8usize, 2.0f64, 0.5f64);
    let (mut serve, mut upstream) = (None::<String>, None::<SocketAddr>);
    while let Some(arg) = args.next() {
        let value = args.next();
        let bad = |why: &str| {
            eprintln!("error: {why}\n\n{USAGE}");
            ExitCode::from(2)
        };
        match (arg.as_str(), value.as_deref()) {
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            ("-n", v) => match v.and_then(|v| v.parse().ok()) {
                Some(v) if (1..=64).contains(&v) => n = v,
                _ => return bad("-n needs a whole number from 1 to 64"),
            },
            ("--ttl", v) => match v.and_then(|v| v.parse().ok()) {
                Some(v) if (0.2..=10.0).contains(&v) => ttl = v,
                _ => return bad("--ttl needs seconds from 0.2 to 10"),
            },
            ("--fetch", v) => match v.and_then(|v| v.parse().ok()) {
                Some(v) if (0.05..=2.0).contains(&v) => fetch_secs = v,
                _ => return bad("--fetch needs seconds from 0.05 to 2"),
            },
            ("--serve", Some(kind)) => serve = Some(kind.to_string()),
            ("--upstream", v) => match v.and_then(|v| v.parse().ok()) {
                Some(a) => upstream = Some(a),
                None => return bad("--upstream needs HOST:PORT"),
            },
            (other, _) => return bad(&format!("unknown argument {other:?} (or it needs a value)")),
        }
    }
    let ttl = Duration::from_secs_f64(ttl);
    if let Some(kind) = serve {
        return match upstream {
            Some(up) => serve_child(&kind, up, ttl),
            None => {
                eprintln!("error: --serve needs --upstream HOST:PORT\n\n{USAGE}");
                ExitCode::from(2)
            }
        };
    }
    match run(n, ttl, Duration::from_secs_f64(fetch_secs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(n: usize, ttl: Duration, fetch: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    // This process has threads from here on; that is fine for starting the child servers,
    // because Command runs a fresh program (exec), which starts single-threaded.
    let up = Upstream::start(fetch)?;
    println!(
        "upstream on {} ({:.2} s per call, counts its calls); TTL {:.1} s; bursts of {n} requests for one key\n",
        up.addr,
        fetch.as_secs_f64(),
        ttl.as_secs_f64()
    );
    let mut rows = Vec::new();
    let s = CacheServer::threaded(up.addr, ttl, Guard::None)?;
    rows.push(scenario("threads, no guard", s, n, ttl, &up));
    let s = CacheServer::threaded(up.addr, ttl, Guard::SingleFlight)?;
    rows.push(scenario("threads, single-flight", s, n, ttl, &up));
    let s = CacheServer::child("forking", up.addr, ttl)?;
    rows.push(scenario("forking", s, n, ttl, &up));
    let s = CacheServer::child("prefork", up.addr, ttl)?;
    rows.push(scenario("prefork, 4 workers", s, n, ttl, &up));

    println!("upstream calls per burst (wall time of the burst)");
    println!("{:<24} {:>14} {:>14} {:>14} {:>9}", "cache", "cold", "warm (in TTL)", "after TTL", "per req");
    for r in &rows {
        let cell = |i: usize| format!("{} ({:.2}s)", r.calls[i], r.wall[i]);
        let per = r.calls.iter().sum::<u64>() as f64 / (3 * n) as f64;
        println!("{:<24} {:>14} {:>14} {:>14} {:>9.2}", r.name, cell(0), cell(1), cell(2), per);
        if r.failed > 0 {
            println!("  ({} requests did not get a 200)", r.failed);
        }
    }

    println!("\nwhere the time goes: /page = 0.30 s of local work + one upstream call");
    let s = CacheServer::threaded(up.addr, ttl, Guard::SingleFlight)?;
    for (label, q) in [("one after the other", ""), ("fetch overlapped", "&overlap=1")] {
        let url = Url::parse(&format!("http://{}/page?work=0.3{q}", s.addr)).map_err(|e| e.to_string())?;
        let report = fire(&FireConfig::new(1, url));
        println!("  {label:<20} {:.2} s", report.wall);
    }
    drop(s);
    println!("\n{n} requests a burst, 2 cores; figures vary. Done in {:.1} s.", t0.elapsed().as_secs_f64());
    Ok(())
}
