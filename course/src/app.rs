//! The example application: the endpoints and command line every example server shares.
//!
//! The example servers (`examples/*_server.rs`) differ only in their concurrency strategy; all
//! of them serve this [`service`] and take these [`ServerArgs`], so that a learner, the docs and
//! the tests can fire the same requests at each and compare. This is the *example contract*:
//!
//! | request | response |
//! |---|---|
//! | `GET /` | 200, the list of endpoints |
//! | `GET /hello` | 200, `Hello, world!` |
//! | `GET /delay?s=1` | waits `s` seconds (0 to 60, fractions allowed), then 200; else 400: a [`Reply::after`], so on the event loop a loop timer, elsewhere a sleep |
//! | `GET /block?s=1` | sleeps the handling thread itself `s` seconds, then 200 (on the event loop that stalls the loop: the lesson; with `--offload`, an offload worker's thread) |
//! | `GET /cpu?ms=100` | burns `ms` milliseconds of CPU (0 to 60000), then 200; else 400 (with `--offload`, on an offload worker) |
//! | `GET /bytes?n=1024` | 200 with a body of `n` bytes (0 to 64 MiB), else 400: a large response for write-timeout tests |
//! | `GET /panic` | the handler panics: 500, and the server goes on |
//! | any other path | 404 |
//! | `POST`, `PUT`, ... on a path | 405 with `Allow: GET, HEAD` |
//! | a method HTTP does not define | 501 |
//!
//! Every response carries `X-Pid`, `X-Tid`, `X-Start`, `X-Elapsed` (see [`socketserver::http`]).
//! The first line on stdout is Python `http.server`'s:
//! `Serving HTTP on 127.0.0.1 port 8000 (http://127.0.0.1:8000/) ...`

use std::fmt::Display;
use std::hint::black_box;
use std::io::Write;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use socketserver::http::{HttpHandler, Reply, Request, Response};
use socketserver::trace::Who;
use socketserver::{
    Addr, Concurrency, EventLoop, Forking, Pool, Prefork, Sequential, Server, Threading, shutdown_on_signals,
};

/// Longest `/delay` allowed, in seconds.
pub const MAX_DELAY_SECS: f64 = 60.0;
/// Longest `/cpu` allowed, in milliseconds.
pub const MAX_CPU_MS: u64 = 60_000;
/// Largest `/bytes` body, in bytes (64 MiB): large enough to outlast any socket buffer, small
/// enough that a request cannot make the server allocate without bound.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Longest `--read-timeout`, `--write-timeout` or `--idle-timeout`, in seconds (an hour).
pub const MAX_TIMEOUT_SECS: f64 = 3600.0;

const INDEX: &str = "\
socketserver example server

GET /             this list
GET /hello        a tiny response
GET /delay?s=1    wait s seconds (0..=60), then answer (on the event loop: a timer)
GET /block?s=1    sleep the handling thread s seconds (on the event loop: stalls it)
GET /cpu?ms=100   burn ms milliseconds of CPU (0..=60000), then answer
GET /bytes?n=1024 a body of n bytes (0..=67108864)
GET /panic        a handler that panics: 500, and the server goes on
GET /count        a counter kept in this process's memory: one more per call

Every response says who served it: X-Pid, X-Tid, X-Start, X-Elapsed.
";

/// Methods HTTP defines; a request with one of these on a known path gets 405, any other
/// method gets 501 (as Python's `http.server` answers an unknown method).
const KNOWN_METHODS: [&str; 7] = ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"];

/// The example endpoints as a [`socketserver::http::Service`] function (`/cpu` inline).
pub fn service(req: &Request) -> Reply {
    respond(req, false)
}

/// The example endpoints; with `offload`, `/cpu` and `/block` are [`Reply::offload`]s.
fn respond(req: &Request, offload: bool) -> Reply {
    let known_path =
        matches!(req.path(), "/" | "/hello" | "/delay" | "/block" | "/cpu" | "/bytes" | "/panic" | "/count");
    match req.method() {
        "GET" | "HEAD" => {}
        m if KNOWN_METHODS.contains(&m) && known_path => {
            return Response::text(405, format!("{m} is not allowed here; use GET or HEAD\n"))
                .with_header("Allow", "GET, HEAD")
                .into();
        }
        m if KNOWN_METHODS.contains(&m) => return not_found(req).into(),
        m => return Response::text(501, format!("method {m:?} is not implemented\n")).into(),
    }
    match req.path() {
        "/" => Response::text(200, INDEX).into(),
        "/hello" => Response::text(200, "Hello, world!\n").into(),
        "/delay" => delay(req),
        "/block" => match secs_param(req) {
            Ok(secs) if offload => Reply::offload(move || block(secs)),
            Ok(secs) => block(secs).into(),
            Err(bad) => bad.into(),
        },
        "/cpu" => cpu(req, offload),
        "/bytes" => bytes(req).into(),
        "/panic" => panic!("/panic was requested: this is the fault-isolation lesson"),
        "/count" => count().into(),
        _ => not_found(req).into(),
    }
}

/// The `/count` counter: one per process, in memory, like a session store or a rate limit kept
/// by the server itself. Threads of one process share it; a forked child counts in its own copy
/// (which dies with it); each instance behind a load balancer has its own (chapter 11).
static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `/count`: adds one to this process's counter and says its new value and who holds it.
fn count() -> Response {
    // Relaxed: the count orders nothing else; each call only needs its own unique value.
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    Response::text(200, format!("count {n} in {}\n", Who::current()))
}

fn not_found(req: &Request) -> Response {
    Response::text(404, format!("no such endpoint: {}\nGET / lists them\n", req.path()))
}

/// The `s` parameter of `/delay` and `/block`: seconds, 0 to [`MAX_DELAY_SECS`] (default 1).
fn secs_param(req: &Request) -> Result<f64, Response> {
    match req.query_param("s").map(str::parse::<f64>) {
        None => Ok(1.0),
        Some(Ok(s)) if (0.0..=MAX_DELAY_SECS).contains(&s) => Ok(s),
        Some(_) => {
            Err(Response::text(400, format!("s must be a number of seconds from 0 to {MAX_DELAY_SECS}\n")))
        }
    }
}

/// `/delay?s=SECONDS`: an I/O-bound request, a handler waiting for a database. A
/// [`Reply::after`]: on the event loop a timer of the loop (`await asyncio.sleep(s)`: the loop
/// serves others meanwhile), on every other strategy the handling thread sleeps.
fn delay(req: &Request) -> Reply {
    match secs_param(req) {
        Ok(secs) => Reply::after(Duration::from_secs_f64(secs), move || {
            Response::text(200, format!("slept {secs:.3} s in {}\n", Who::current()))
        }),
        Err(bad) => bad.into(),
    }
}

/// `/block?s=SECONDS`: the handling thread itself sleeps (`time.sleep(s)` inside an asyncio
/// handler). Harmless on a thread of its own; on the event loop every client of the loop waits
/// — unless `--offload` sends it to a worker (`run_in_executor`, the fix).
fn block(secs: f64) -> Response {
    std::thread::sleep(Duration::from_secs_f64(secs));
    Response::text(200, format!("blocked {secs:.3} s in {}\n", Who::current()))
}

/// `/cpu?ms=MILLISECONDS`: a CPU-bound request. Spins, computing, until the time is up; with
/// `offload`, on an offload worker ([`Reply::offload`]).
fn cpu(req: &Request, offload: bool) -> Reply {
    let ms = match req.query_param("ms").map(str::parse::<u64>) {
        None => 100,
        Some(Ok(ms)) if ms <= MAX_CPU_MS => ms,
        Some(_) => {
            return Response::text(400, format!("ms must be a whole number from 0 to {MAX_CPU_MS}\n")).into();
        }
    };
    let work = move || {
        let (rounds, _) = burn_cpu(Duration::from_millis(ms));
        Response::text(200, format!("burned {ms} ms of CPU ({rounds} rounds) in {}\n", Who::current()))
    };
    if offload { Reply::offload(work) } else { Reply::now(work()) }
}

/// `/bytes?n=N`: a response of `N` bytes (default 1024), a repeating `0123456789abcdef` line
/// pattern so a reader can see where a truncated body stopped. Large ones outlast the socket
/// buffers, which is what a client that never reads needs in order to meet the write timeout.
fn bytes(req: &Request) -> Response {
    let n = match req.query_param("n").map(str::parse::<usize>) {
        None => 1024,
        Some(Ok(n)) if n <= MAX_BYTES => n,
        Some(_) => return Response::text(400, format!("n must be a whole number from 0 to {MAX_BYTES}\n")),
    };
    const LINE: &[u8; 16] = b"0123456789abcde\n";
    // `repeat` copies by doubling (a few dozen memcpys for 64 MiB), fast even in a debug build;
    // a byte-at-a-time iterator takes seconds there and would show up in every measurement.
    let mut body = LINE.repeat(n.div_ceil(LINE.len()));
    body.truncate(n);
    Response::new(200).with_header("Content-Type", "application/octet-stream").with_body(body)
}

/// Busy work for `d`: returns the rounds done and a checksum (so the work cannot be optimised
/// away). Checks the clock every 1024 rounds.
pub fn burn_cpu(d: Duration) -> (u64, u64) {
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rounds = 0u64;
    loop {
        for _ in 0..1024 {
            // xorshift: cheap, and black_box keeps the optimiser from skipping it.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x = black_box(x);
        }
        rounds += 1024;
        if start.elapsed() >= d {
            return (rounds, x);
        }
    }
}

/// A fixed amount of CPU work: `rounds` steps of xorshift (the teaching examples `fork_demo`
/// and `scheduling` time it). Unlike [`burn_cpu`] it does not watch the clock: a job that
/// shares a core must take longer, or there would be nothing to measure.
pub fn cpu_work(rounds: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = black_box(x);
    }
    x
}

/// Whose CPU time [`cpu_seconds`] reads (`getrusage(2)`'s `who`).
pub use nix::sys::resource::UsageWho;

/// CPU time (user + system) used so far by `who`: this process, its reaped children, or this
/// thread; in seconds (0.0 if the kernel refuses, which it does not for these three).
pub fn cpu_seconds(who: UsageWho) -> f64 {
    match nix::sys::resource::getrusage(who) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(u.user_time()) + secs(u.system_time())
        }
        Err(_) => 0.0,
    }
}

/// How many [`cpu_work`] rounds take about `target` of CPU time on one core, timed by the CPU
/// time `who` used (not the wall clock, so that other programs competing for the cores do not
/// shrink the job).
pub fn calibrate_cpu_work(target: Duration, who: UsageWho) -> u64 {
    let probe = 30_000_000u64;
    let before = cpu_seconds(who);
    black_box(cpu_work(probe));
    let used = (cpu_seconds(who) - before).max(1e-3);
    (probe as f64 / used * target.as_secs_f64()).max(1.0) as u64
}

/// Which concurrency strategy an example server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Sequential`].
    Sequential,
    /// [`Threading`].
    Threading,
    /// [`Forking`].
    Forking,
    /// [`Pool`]: `--threads N` reused worker threads.
    Pool,
    /// [`Prefork`]: a master and `--workers N` worker processes.
    Prefork,
    /// [`EventLoop`]: `--threads N` loops, `--offload M` offload workers each.
    EventLoop,
}

/// Workers of the `pool_server` example unless `--threads` says otherwise: few enough that
/// `-n 10 /delay?s=1` shows waves (4 + 4 + 2, about 3 s), as many as a small laptop has cores.
pub const DEFAULT_POOL_THREADS: usize = 4;

impl Kind {
    /// The example's name: `sequential_server`, ...
    pub fn example_name(self) -> &'static str {
        match self {
            Kind::Sequential => "sequential_server",
            Kind::Threading => "threaded_server",
            Kind::Forking => "forking_server",
            Kind::Pool => "pool_server",
            Kind::Prefork => "prefork_server",
            Kind::EventLoop => "event_loop_server",
        }
    }

    /// Parses `sequential`, `threading` / `threaded`, `forking`, `pool`, `prefork`,
    /// `event-loop` / `event_loop`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "sequential" => Some(Kind::Sequential),
            "threading" | "threaded" => Some(Kind::Threading),
            "forking" => Some(Kind::Forking),
            "prefork" => Some(Kind::Prefork),
            "pool" => Some(Kind::Pool),
            "event-loop" | "event_loop" => Some(Kind::EventLoop),
            _ => None,
        }
    }
}

/// The command line shared by the example servers.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerArgs {
    /// `--host` (default `127.0.0.1`).
    pub host: String,
    /// `--port` (default 8000; 0 lets the kernel choose a free port).
    pub port: u16,
    /// `--unix PATH`: serve on a Unix stream socket at PATH instead of TCP (`--host` and
    /// `--port` are then unused). The file is made owner-only and removed on exit.
    pub unix: Option<std::path::PathBuf>,
    /// `--max-children N` (forking only; default 40).
    pub max_children: Option<usize>,
    /// `--max-threads N` (threading only; default none).
    pub max_threads: Option<usize>,
    /// `--threads N`: the pool's worker threads (default [`DEFAULT_POOL_THREADS`]), or, for
    /// prefork, up to N request threads in each worker (default none: one request at a time),
    /// or the event loop's loops (default 1).
    pub threads: Option<usize>,
    /// `--offload M` (event loop, and prefork with `--event-loop`): offload workers per loop,
    /// and `/cpu` and `/block` run on them (default none: they run on the loop).
    pub offload: Option<usize>,
    /// `--accept-on-loops` (event loop only): every loop accepts from the listener itself
    /// (`EPOLLEXCLUSIVE`), instead of the accept thread handing connections over
    /// ([`EventLoop::accept_on_loops`]).
    pub accept_on_loops: bool,
    /// `--no-reap` (forking only): don't reap in `service_actions`, for the zombie lesson.
    pub no_reap: bool,
    /// `--quiet`: no log line per request (benchmarks use it).
    pub quiet: bool,
    /// `--workers N` (prefork only; default [`DEFAULT_WORKERS`]).
    pub workers: Option<usize>,
    /// `--reuse-port` (prefork and event loop): one `SO_REUSEPORT` listener per worker
    /// ([`Prefork::reuse_port`]) or per loop ([`EventLoop::reuse_port`]).
    pub reuse_port: bool,
    /// `--event-loop` (prefork only): each worker is one event loop ([`Prefork::event_loop`]),
    /// nginx's architecture.
    pub event_loop: bool,
    /// `--wake-all` (prefork only): workers wait on the shared listener with plain `poll`, so
    /// every connection wakes all idle workers ([`Prefork::exclusive_wakeup`] off).
    pub wake_all: bool,
    /// `--warn-after SECS`: log a warning for each request whose handler ran longer
    /// ([`HttpHandler::slow_request_warning`]; default: off).
    pub warn_after: Option<Duration>,
    /// `--read-timeout SECS`: [`HttpHandler::read_timeout`] (default: the handler's, 30 s).
    pub read_timeout: Option<Duration>,
    /// `--write-timeout SECS`: [`HttpHandler::write_timeout`] (default: the handler's, 30 s).
    pub write_timeout: Option<Duration>,
    /// `--idle-timeout SECS`: [`HttpHandler::idle_timeout`] (default: the handler's, 5 s).
    pub idle_timeout: Option<Duration>,
    /// `--header-timeout SECS`: [`HttpHandler::header_timeout`] (default: the handler's, 10 s).
    pub header_timeout: Option<Duration>,
    /// `--min-body-rate BYTES_PER_SEC`: [`HttpHandler::min_body_rate`], after the handler's
    /// grace (default: the handler's, 500 bytes/s; 0 switches it off).
    pub min_body_rate: Option<u64>,
    /// `--min-send-rate BYTES_PER_SEC`: [`HttpHandler::min_send_rate`], after the handler's
    /// grace (default: the handler's, 500 bytes/s; 0 switches it off).
    pub min_send_rate: Option<u64>,
    /// `--unsent-limit BYTES`: [`HttpHandler::unsent_limit`], how much of a response the
    /// kernel may hold for a client before sending it (default: the handler's, 128 KiB; 0: the
    /// kernel's own, no limit).
    pub unsent_limit: Option<u32>,
    /// `--blocking-workers` (pool only): workers read and write their connections themselves,
    /// as before the reactor ([`Pool::half_async`] off), for the throughput comparison.
    pub blocking_workers: bool,
    /// `--hand-off` (pool only): a reactor thread of its own hands each complete request to a
    /// worker (half-sync/half-async, [`Pool::leader_followers`] off), for the comparison.
    pub hand_off: bool,
    /// `--queue-size N` (pool only): room for N requests waiting for a worker
    /// ([`Pool::queue_size`]; default threads × 4).
    pub queue_size: Option<usize>,
    /// `--shed-when-full SECS` (pool only): answer `503` with `Retry-After: SECS` when every
    /// worker is busy and the queue is full ([`Pool::shed_when_full`]; default: wait).
    pub shed_when_full: Option<Duration>,
}

/// Workers of `prefork_server` when `--workers` is not given.
pub const DEFAULT_WORKERS: usize = 4;

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            host: "127.0.0.1".into(),
            port: 8000,
            unix: None,
            max_children: None,
            max_threads: None,
            threads: None,
            offload: None,
            accept_on_loops: false,
            no_reap: false,
            quiet: false,
            workers: None,
            reuse_port: false,
            event_loop: false,
            wake_all: false,
            warn_after: None,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            header_timeout: None,
            min_body_rate: None,
            min_send_rate: None,
            unsent_limit: None,
            blocking_workers: false,
            hand_off: false,
            queue_size: None,
            shed_when_full: None,
        }
    }
}

/// What went wrong parsing the command line, or a request for help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `-h` / `--help` was given.
    Help,
    /// A bad or unknown argument, explained.
    Bad(String),
}

impl ServerArgs {
    /// Parses the arguments after the program name. Options that do not apply to `kind`
    /// (`--max-children` on a threaded server) are refused, so a typo is not silently ignored.
    ///
    /// # Errors
    /// [`ArgsError::Help`] for `-h`/`--help`, [`ArgsError::Bad`] otherwise.
    pub fn parse(kind: Kind, args: impl IntoIterator<Item = String>) -> Result<ServerArgs, ArgsError> {
        use lexopt::Arg::{Long, Short, Value};
        let mut out = ServerArgs::default();
        // lexopt splits the spellings (`--port 0`, `--port=0`, `-p0`); the meanings are below.
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|e| ArgsError::Bad(e.to_string()))? {
            let name = match arg {
                Short(c) => format!("-{c}"),
                Long(l) => format!("--{l}"),
                Value(v) => return Err(ArgsError::Bad(format!("unknown argument {v:?}"))),
            };
            let mut value = |name: &str| match parser.value() {
                // Lossy is lossless here: the arguments came in as Strings.
                Ok(v) => Ok(v.to_string_lossy().into_owned()),
                Err(_) => Err(ArgsError::Bad(format!("{name} needs a value"))),
            };
            match name.as_str() {
                "-h" | "--help" => return Err(ArgsError::Help),
                "--host" => out.host = value("--host")?,
                "--port" | "-p" => {
                    let v = value("--port")?;
                    out.port =
                        v.parse().map_err(|_| ArgsError::Bad(format!("--port {v}: not a port number")))?;
                }
                "--unix" => out.unix = Some(value("--unix")?.into()),
                "--max-children" if kind == Kind::Forking => {
                    out.max_children = Some(positive("--max-children", &value("--max-children")?)?)
                }
                "--max-threads" if kind == Kind::Threading => {
                    out.max_threads = Some(positive("--max-threads", &value("--max-threads")?)?)
                }
                "--threads" if matches!(kind, Kind::Pool | Kind::Prefork | Kind::EventLoop) => {
                    out.threads = Some(positive("--threads", &value("--threads")?)?)
                }
                "--offload" if matches!(kind, Kind::EventLoop | Kind::Prefork) => {
                    out.offload = Some(positive("--offload", &value("--offload")?)?)
                }
                "--accept-on-loops" if kind == Kind::EventLoop => out.accept_on_loops = true,
                "--no-reap" if kind == Kind::Forking => out.no_reap = true,
                "--workers" | "-w" if kind == Kind::Prefork => {
                    out.workers = Some(positive("--workers", &value("--workers")?)?)
                }
                "--reuse-port" if matches!(kind, Kind::Prefork | Kind::EventLoop) => out.reuse_port = true,
                "--wake-all" if kind == Kind::Prefork => out.wake_all = true,
                "--event-loop" if kind == Kind::Prefork => out.event_loop = true,
                "--read-timeout" => {
                    out.read_timeout = Some(seconds("--read-timeout", &value("--read-timeout")?)?)
                }
                "--write-timeout" => {
                    out.write_timeout = Some(seconds("--write-timeout", &value("--write-timeout")?)?)
                }
                "--idle-timeout" => {
                    out.idle_timeout = Some(seconds("--idle-timeout", &value("--idle-timeout")?)?)
                }
                "--header-timeout" => {
                    out.header_timeout = Some(seconds("--header-timeout", &value("--header-timeout")?)?)
                }
                "--min-body-rate" => {
                    out.min_body_rate = Some(rate("--min-body-rate", &value("--min-body-rate")?)?)
                }
                "--unsent-limit" => {
                    let v = value("--unsent-limit")?;
                    out.unsent_limit = Some(v.parse::<u32>().map_err(|_| {
                        ArgsError::Bad(format!(
                            "--unsent-limit {v}: need a whole number of bytes (0: no limit)"
                        ))
                    })?)
                }
                "--min-send-rate" => {
                    out.min_send_rate = Some(rate("--min-send-rate", &value("--min-send-rate")?)?)
                }
                "--blocking-workers" if kind == Kind::Pool => out.blocking_workers = true,
                "--hand-off" if kind == Kind::Pool => out.hand_off = true,
                "--queue-size" if kind == Kind::Pool => {
                    out.queue_size = Some(positive("--queue-size", &value("--queue-size")?)?)
                }
                "--shed-when-full" if kind == Kind::Pool => {
                    out.shed_when_full = Some(seconds("--shed-when-full", &value("--shed-when-full")?)?)
                }
                "--quiet" | "-q" => out.quiet = true,
                "--warn-after" => {
                    let v = value("--warn-after")?;
                    match v.parse::<f64>() {
                        Ok(s) if s > 0.0 && s <= 86_400.0 => {
                            out.warn_after = Some(Duration::from_secs_f64(s))
                        }
                        _ => return Err(ArgsError::Bad(format!("--warn-after {v}: need seconds above 0"))),
                    }
                }
                _ => return Err(ArgsError::Bad(format!("unknown argument {name:?}"))),
            }
        }
        if kind == Kind::Prefork && out.offload.is_some() && !out.event_loop {
            return Err(ArgsError::Bad(
                "--offload needs --event-loop (offload workers belong to a loop)".into(),
            ));
        }
        Ok(out)
    }

    /// The usage text for `kind`.
    pub fn usage(kind: Kind) -> String {
        let extra = match kind {
            Kind::Sequential => "",
            Kind::Threading => "  --max-threads N   at most N request threads at once (default: no limit)\n",
            Kind::Pool => {
                "  --threads N       worker threads in the pool (default 4)\n  \
                 --blocking-workers workers read and write connections themselves (no reactor)\n  \
                 --hand-off        a reactor thread hands requests to the workers (default: they take turns at it)\n  \
                 --queue-size N    room for N requests waiting for a worker (default threads x 4)\n  \
                 --shed-when-full SECS  queue full: answer 503 + Retry-After: SECS (default: wait)\n"
            }
            Kind::EventLoop => {
                "  --threads N       N event loops, one thread each (default 1)\n  \
                 --offload M       M offload workers per loop; /cpu and /block run on them (default: on the loop)\n  \
                 --accept-on-loops each loop accepts itself, EPOLLEXCLUSIVE (default: the accept thread hands over to 2+ loops)\n  \
                 --reuse-port      each loop accepts from its own SO_REUSEPORT listener\n"
            }
            Kind::Forking => {
                "  --max-children N  at most N children at once (default 40)\n  \
                 --no-reap         don't reap children between requests (the zombie lesson)\n"
            }
            Kind::Prefork => {
                "  --workers N       N worker processes (default 4); kill -TTIN/-TTOU the master: one more/fewer\n  \
                 --threads M       each worker runs up to M requests on threads (default: one at a time)\n  \
                 --reuse-port      one SO_REUSEPORT listener per worker (no thundering herd)\n  \
                 --wake-all        shared listener polled by all: each connection wakes every idle worker\n  \
                 --event-loop      each worker is one event loop, nginx's architecture (chapter 13)\n  \
                 --offload M       with --event-loop: M offload workers per worker for /cpu and /block\n"
            }
        };
        format!(
            "usage: cargo run --example {} -- [options]\n\n  \
             --host HOST       address to listen on (default 127.0.0.1)\n  \
             --port PORT       port (default 8000; 0 picks a free one)\n  \
             --unix PATH       serve on a Unix socket at PATH instead (curl --unix-socket PATH)\n{extra}  \
             --read-timeout S  seconds a request has to arrive, from its first byte (default 30)\n  \
             --write-timeout S seconds one blocked write may wait for the client (default 30)\n  \
             --idle-timeout S  seconds a keep-alive connection may wait for its next request (default 5)\n  \
             --header-timeout S seconds the request head has, from its first byte (default 10)\n  \
             --min-body-rate B slowest body upload in bytes/s, after 10 s (default 500; 0: off)\n  \
             --min-send-rate B slowest response download in bytes/s, after 10 s (default 500; 0: off)\n  \
             --unsent-limit B  bytes of a response the kernel holds unsent (default 131072; 0: no limit)\n  \
             --quiet           no log line per request\n  \
             --warn-after SECS warn about requests whose handler ran longer (default: off)\n  \
             -h, --help        this text\n",
            kind.example_name()
        )
    }
}

fn positive(name: &str, v: &str) -> Result<usize, ArgsError> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ArgsError::Bad(format!("{name} {v}: need a whole number above 0"))),
    }
}

/// A rate in bytes per second: a whole number, 0 switching the check off.
fn rate(name: &str, v: &str) -> Result<u64, ArgsError> {
    v.parse::<u64>().map_err(|_| ArgsError::Bad(format!("{name} {v}: need bytes per second (0: off)")))
}

/// A timeout in seconds: a number above 0 and at most [`MAX_TIMEOUT_SECS`], fractions allowed.
fn seconds(name: &str, v: &str) -> Result<Duration, ArgsError> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_TIMEOUT_SECS => Ok(Duration::from_secs_f64(s)),
        _ => Err(ArgsError::Bad(format!("{name} {v}: need seconds above 0 and at most {MAX_TIMEOUT_SECS}"))),
    }
}

/// For the teaching examples' own small argument parsers: `value` (the argument after `flag`)
/// parsed as a `T` within `range`, or the message that says what was wanted, such as
/// `--max needs a whole number from 1 to 8`.
///
/// # Errors
/// The message, if the value is missing, does not parse, or lies outside `range`.
pub fn bounded<T>(
    flag: &str,
    value: Option<String>,
    range: RangeInclusive<T>,
    what: &str,
) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display,
{
    match value.as_deref().map(str::parse::<T>) {
        Some(Ok(v)) if range.contains(&v) => Ok(v),
        _ => Err(format!("{flag} needs {what} from {} to {}", range.start(), range.end())),
    }
}

/// For the teaching examples: the options their parser returned (`Ok(Some(..))`), or the exit
/// code after printing `usage` for `--help` (`Ok(None)`, status 0) or the error and `usage`
/// (`Err`, status 2).
///
/// # Errors
/// The exit code to return from `main` when there are no options to run with.
pub fn options_or_exit<T>(parsed: Result<Option<T>, String>, usage: &str) -> Result<T, ExitCode> {
    match parsed {
        Ok(Some(options)) => Ok(options),
        Ok(None) => {
            // Not println!: `--help | head -2` closes the pipe early, and that is no panic.
            let _ = writeln!(std::io::stdout(), "{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("error: {why}\n\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

/// The example [`service`] in an [`HttpHandler`] configured by `args` (logging, timeouts): the
/// same for every strategy, prefork's workers included.
pub fn handler(args: &ServerArgs) -> HttpHandler<impl socketserver::http::Service> {
    let offload = args.offload.is_some();
    let service = move |req: &Request| respond(req, offload);
    let mut h = HttpHandler::new(service).log_requests(!args.quiet).slow_request_warning(args.warn_after);
    if let Some(d) = args.read_timeout {
        h = h.read_timeout(d);
    }
    if let Some(d) = args.write_timeout {
        h = h.write_timeout(d);
    }
    if let Some(d) = args.idle_timeout {
        h = h.idle_timeout(d);
    }
    if let Some(d) = args.header_timeout {
        h = h.header_timeout(d);
    }
    // The grace stays the handler's default: these flags only move the rate.
    if let Some(r) = args.min_body_rate {
        h = h.min_body_rate(r, Duration::from_secs(10)); // the handler's default grace
    }
    if let Some(r) = args.min_send_rate {
        h = h.min_send_rate(r, Duration::from_secs(10)); // the handler's default grace
    }
    if let Some(b) = args.unsent_limit {
        h = h.unsent_limit(b);
    }
    h
}

/// The first line an example server prints, in Python `http.server`'s words; for a Unix socket
/// (which `http.server` does not have) in the same shape, with the `curl` command that reaches
/// it.
pub fn banner(addr: &Addr) -> String {
    let addr = match addr {
        Addr::Inet(a) => *a,
        other => {
            let path = other.as_path().map(|p| p.display().to_string()).unwrap_or_else(|| other.to_string());
            return format!(
                "Serving HTTP on {path} (unix) (curl --unix-socket {path} http://localhost/) ..."
            );
        }
    };
    let host = addr.ip();
    let url_host = if addr.is_ipv6() { format!("[{host}]") } else { host.to_string() };
    format!("Serving HTTP on {host} port {} (http://{url_host}:{}/) ...", addr.port(), addr.port())
}

/// Reads the address back out of a [`banner`] line (the demo and the tests use it to find the
/// port a `--port 0` server got).
pub fn parse_banner(line: &str) -> Option<SocketAddr> {
    let url = line.split("(http://").nth(1)?.split('/').next()?;
    url.parse().ok()
}

/// Starts logging the way the examples do: `info` and above to stderr unless `RUST_LOG` says
/// otherwise, one line per record, the message only (each request line already says who and
/// when).
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| match record.level() {
            log::Level::Info => writeln!(buf, "{}", record.args()),
            level => writeln!(buf, "{level}: {}", record.args()),
        })
        .try_init();
}

/// The whole `main` of an example server: parse arguments, bind, print the banner, serve until
/// SIGINT/SIGTERM, finish in-flight requests, exit 0.
pub fn main(kind: Kind) -> ExitCode {
    run(kind, std::env::args().skip(1))
}

/// [`main`] with the arguments given (without the program name).
pub fn run(kind: Kind, args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match ServerArgs::parse(kind, args) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            print!("{}", ServerArgs::usage(kind));
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Bad(why)) => {
            eprint!("error: {why}\n\n{}", ServerArgs::usage(kind));
            return ExitCode::from(2);
        }
    };
    init_logging();
    let result = match kind {
        Kind::Sequential => serve(Sequential, &args),
        Kind::Threading => {
            let mut t = Threading::new();
            if let Some(n) = args.max_threads {
                t = t.max_threads(n);
            }
            serve(t, &args)
        }
        Kind::Forking => {
            let mut f = Forking::new().reap_in_service_actions(!args.no_reap);
            if let Some(n) = args.max_children {
                f = f.max_children(n);
            }
            serve(f, &args)
        }
        Kind::Prefork => serve_prefork(&args),
        Kind::Pool => {
            let mut pool = Pool::new(args.threads.unwrap_or(DEFAULT_POOL_THREADS))
                .half_async(!args.blocking_workers)
                .leader_followers(!args.hand_off);
            if let Some(n) = args.queue_size {
                pool = pool.queue_size(n);
            }
            if let Some(retry_after) = args.shed_when_full {
                pool = pool.shed_when_full(retry_after);
            }
            serve(pool, &args)
        }
        Kind::EventLoop => serve(
            EventLoop::new()
                .threads(args.threads.unwrap_or(1))
                .offload(args.offload.unwrap_or(0))
                .accept_on_loops(args.accept_on_loops)
                .reuse_port(args.reuse_port),
            &args,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `args.host:args.port` with strategy `c`, serves [`service`] until a signal, closes.
///
/// # Errors
/// If the address cannot be bound, or the signal handler cannot be installed.
pub fn serve<C: Concurrency>(c: C, args: &ServerArgs) -> socketserver::Result<()> {
    let handler = handler(args);
    let mut server = match &args.unix {
        Some(path) => Server::bind_unix(path, c, handler)?,
        None => Server::bind((args.host.as_str(), args.port), c, handler)?,
    };
    // Before serving: a Ctrl-C from now on stops the server gracefully (a signal handler that
    // wakes serve_forever; no thread, so a forking server's process stays single-threaded).
    shutdown_on_signals(server.shutdown_handle())?;
    println!("{}", banner(&server.local_addr()));
    // Flush now: when stdout is a pipe (the demo, the tests) it is not line-buffered by the
    // reader's terminal, and the reader is waiting for this line to learn the port.
    let _ = std::io::stdout().flush();
    log::info!(
        "{} server, {}: one log line per request with pid, tid, start offset and duration",
        server.concurrency().name(),
        Who::current()
    );
    server.serve_forever()?;
    log::info!("finishing requests in flight...");
    server.server_close();
    log::info!(
        "stopped: every request finished{}",
        if server.concurrency().name() == "forking" { ", every child reaped" } else { "" }
    );
    Ok(())
}

/// The prefork example's `main` after argument parsing: binds, prints the banner, and runs the
/// master until SIGTERM/SIGINT (see [`Prefork`] for the signals). The master handles its signals
/// itself, from a signalfd, so unlike [`serve`] this installs no `shutdown_on_signals` handler:
/// the master reads SIGINT and SIGTERM as data. Returns in the master only; workers `_exit`.
///
/// # Errors
/// If the address cannot be bound, or the master's signal machinery fails.
pub fn serve_prefork(args: &ServerArgs) -> socketserver::Result<()> {
    let mut prefork = Prefork::new(args.workers.unwrap_or(DEFAULT_WORKERS))
        .reuse_port(args.reuse_port)
        .exclusive_wakeup(!args.wake_all);
    if let Some(m) = args.threads {
        prefork = prefork.threads(m);
    }
    if args.event_loop {
        prefork = prefork.event_loop(args.offload.unwrap_or(0));
    }
    let master = match &args.unix {
        Some(path) => prefork.bind_unix(path)?,
        None => prefork.bind((args.host.as_str(), args.port))?,
    };
    println!("{}", banner(&master.local_addr()));
    // Flush now, before any fork: the reader is waiting for this line, and an unflushed buffer
    // would be copied into every worker.
    let _ = std::io::stdout().flush();
    master.run(handler(args))?;
    log::info!("stopped: every request finished, every worker reaped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bounded_arguments_parse_within_their_range_and_say_what_was_wanted() {
        let v = |s: &str| Some(s.to_string());
        assert_eq!(bounded("--max", v("8"), 1..=8, "a whole number"), Ok(8));
        assert_eq!(bounded("--secs", v("0.5"), 0.1..=5.0, "seconds"), Ok(0.5));
        let wanted = Err("--max needs a whole number from 1 to 8".to_string());
        for bad in [v("9"), v("0"), v("x"), v("-1"), None] {
            assert_eq!(bounded::<usize>("--max", bad, 1..=8, "a whole number"), wanted);
        }
        assert_eq!(options_or_exit(Ok(Some(3)), "usage"), Ok(3));
        assert_eq!(options_or_exit::<u8>(Ok(None), "usage"), Err(ExitCode::SUCCESS));
        assert_eq!(options_or_exit::<u8>(Err("bad".into()), "usage"), Err(ExitCode::from(2)));
    }

    #[test]
    fn banner_round_trips() {
        let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert_eq!(banner(&addr.into()), "Serving HTTP on 127.0.0.1 port 8000 (http://127.0.0.1:8000/) ...");
        assert_eq!(parse_banner(&banner(&addr.into())), Some(addr));
        let unix = Addr::Unix("s.sock".into());
        assert_eq!(
            banner(&unix),
            "Serving HTTP on s.sock (unix) (curl --unix-socket s.sock http://localhost/) ..."
        );
        assert_eq!(parse_banner(&banner(&unix)), None);
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(parse_banner(&banner(&v6.into())), Some(v6));
        assert_eq!(parse_banner("hello"), None);
    }

    #[test]
    fn arguments_parse_and_misfits_are_refused() {
        let a = ServerArgs::parse(Kind::Forking, args(&["--port", "0", "--max-children", "2", "--quiet"]))
            .unwrap();
        assert_eq!((a.port, a.max_children, a.quiet), (0, Some(2), true));
        let glued = ServerArgs::parse(Kind::Forking, args(&["--port=0", "--max-children=2", "-q"])).unwrap();
        assert_eq!(glued, a, "--name=value spells the same");
        assert!(matches!(ServerArgs::parse(Kind::Sequential, args(&["extra"])), Err(ArgsError::Bad(_))));
        assert!(matches!(
            ServerArgs::parse(Kind::Sequential, args(&["--quiet=yes"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(
            ServerArgs::parse(Kind::Threading, args(&["--max-children", "2"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(
            ServerArgs::parse(Kind::Forking, args(&["--max-children", "0"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(ServerArgs::parse(Kind::Sequential, args(&["--port"])), Err(ArgsError::Bad(_))));
        assert!(matches!(
            ServerArgs::parse(Kind::Sequential, args(&["--port", "99999"])),
            Err(ArgsError::Bad(_))
        ));
        let p = ServerArgs::parse(
            Kind::Prefork,
            args(&["--workers", "3", "--threads", "2", "--reuse-port", "--wake-all"]),
        )
        .unwrap();
        assert_eq!((p.workers, p.threads, p.reuse_port, p.wake_all), (Some(3), Some(2), true, true));
        let n = ServerArgs::parse(Kind::Prefork, args(&["--event-loop", "--offload", "2"])).unwrap();
        assert_eq!((n.event_loop, n.offload), (true, Some(2)));
        assert!(matches!(
            ServerArgs::parse(Kind::Prefork, args(&["--offload", "2"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(
            ServerArgs::parse(Kind::EventLoop, args(&["--event-loop"])),
            Err(ArgsError::Bad(_))
        ));
        let e = ServerArgs::parse(Kind::EventLoop, args(&["--threads", "2", "--reuse-port"])).unwrap();
        assert_eq!((e.threads, e.reuse_port), (Some(2), true));
        assert!(matches!(ServerArgs::parse(Kind::Pool, args(&["--reuse-port"])), Err(ArgsError::Bad(_))));
        assert!(matches!(
            ServerArgs::parse(Kind::Forking, args(&["--workers", "2"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(
            ServerArgs::parse(Kind::Prefork, args(&["--workers", "0"])),
            Err(ArgsError::Bad(_))
        ));
        assert_eq!(Kind::parse("prefork"), Some(Kind::Prefork));
        assert_eq!(Kind::Prefork.example_name(), "prefork_server");
        assert_eq!(ServerArgs::parse(Kind::Pool, args(&["--threads", "8"])).unwrap().threads, Some(8));
        assert!(matches!(
            ServerArgs::parse(Kind::Threading, args(&["--threads", "8"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(matches!(ServerArgs::parse(Kind::Pool, args(&["--threads", "0"])), Err(ArgsError::Bad(_))));
        assert_eq!(Kind::parse("pool").map(Kind::example_name), Some("pool_server"));
        let shed =
            ServerArgs::parse(Kind::Pool, args(&["--queue-size", "2", "--shed-when-full", "1.5"])).unwrap();
        assert_eq!((shed.queue_size, shed.shed_when_full), (Some(2), Some(Duration::from_millis(1500))));
        assert!(ServerArgs::usage(Kind::Pool).contains("--shed-when-full SECS"));
        assert!(matches!(
            ServerArgs::parse(Kind::Threading, args(&["--shed-when-full", "1"])),
            Err(ArgsError::Bad(_))
        ));
        assert!(ServerArgs::usage(Kind::Pool).contains("--threads N"));
        let w = ServerArgs::parse(Kind::Sequential, args(&["--warn-after", "0.2"])).unwrap();
        assert_eq!(w.warn_after, Some(Duration::from_millis(200)));
        assert!(matches!(
            ServerArgs::parse(Kind::Pool, args(&["--warn-after", "0"])),
            Err(ArgsError::Bad(_))
        ));
        assert_eq!(ServerArgs::parse(Kind::Sequential, args(&["-h"])), Err(ArgsError::Help));
        assert_eq!(ServerArgs::parse(Kind::Sequential, args(&[])).unwrap(), ServerArgs::default());
    }

    #[test]
    fn timeouts_parse_as_seconds_on_every_strategy_and_are_bounded() {
        for kind in
            [Kind::Sequential, Kind::Threading, Kind::Forking, Kind::Pool, Kind::Prefork, Kind::EventLoop]
        {
            let a = ServerArgs::parse(
                kind,
                args(&["--read-timeout", "3", "--write-timeout", "0.5", "--idle-timeout", "3600"]),
            )
            .unwrap();
            assert_eq!(a.read_timeout, Some(Duration::from_secs(3)));
            assert_eq!(a.write_timeout, Some(Duration::from_millis(500)));
            assert_eq!(a.idle_timeout, Some(Duration::from_secs(3600)));
            assert!(ServerArgs::usage(kind).contains("--read-timeout S"));
        }
        for bad in ["0", "-1", "3600.5", "NaN", "inf", "soon", ""] {
            assert!(
                matches!(
                    ServerArgs::parse(Kind::Threading, args(&["--write-timeout", bad])),
                    Err(ArgsError::Bad(_))
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(matches!(ServerArgs::parse(Kind::Pool, args(&["--idle-timeout"])), Err(ArgsError::Bad(_))));
    }

    #[test]
    fn the_unsent_limit_parses_as_bytes_on_every_strategy() {
        for kind in
            [Kind::Sequential, Kind::Threading, Kind::Forking, Kind::Pool, Kind::Prefork, Kind::EventLoop]
        {
            let a = ServerArgs::parse(kind, args(&["--unsent-limit", "65536"])).unwrap();
            assert_eq!(a.unsent_limit, Some(65536));
            assert_eq!(
                ServerArgs::parse(kind, args(&["--unsent-limit", "0"])).unwrap().unsent_limit,
                Some(0)
            );
            assert!(ServerArgs::usage(kind).contains("--unsent-limit B"));
        }
        for bad in ["-1", "4294967296", "128k", ""] {
            assert!(
                matches!(
                    ServerArgs::parse(Kind::Pool, args(&["--unsent-limit", bad])),
                    Err(ArgsError::Bad(_))
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bytes_endpoint_sizes_and_bounds() {
        let get = |target: &str| {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            match socketserver::http::parse_request(raw.as_bytes(), &socketserver::http::Limits::default()) {
                socketserver::http::Parsed::Complete { request, .. } => service(&request).wait(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(get("/bytes").body().len(), 1024);
        let r = get("/bytes?n=20");
        assert_eq!((r.status(), r.body()), (200, &b"0123456789abcde\n0123"[..]));
        assert_eq!(get("/bytes?n=0").body().len(), 0);
        assert_eq!(get(&format!("/bytes?n={MAX_BYTES}")).body().len(), MAX_BYTES);
        for bad in [format!("/bytes?n={}", MAX_BYTES + 1), "/bytes?n=-1".into(), "/bytes?n=x".into()] {
            assert_eq!(get(&bad).status(), 400, "{bad}");
        }
    }

    #[test]
    fn count_endpoint_counts_up_in_this_process() {
        let get = |target: &str| {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            match socketserver::http::parse_request(raw.as_bytes(), &socketserver::http::Limits::default()) {
                socketserver::http::Parsed::Complete { request, .. } => service(&request).wait(),
                other => panic!("{other:?}"),
            }
        };
        let value = |r: Response| -> u64 {
            let body = String::from_utf8_lossy(r.body()).into_owned();
            body.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{body}"))
        };
        // Other tests in this process may count too: strictly increasing is what holds.
        let (a, b) = (value(get("/count")), value(get("/count")));
        assert!(b > a && a >= 1, "{a} then {b}");
        assert!(INDEX.contains("GET /count"));
    }

    #[test]
    fn cpu_burn_takes_about_the_time_asked() {
        let t0 = Instant::now();
        let (rounds, _) = burn_cpu(Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert!(rounds > 0);
    }
}
