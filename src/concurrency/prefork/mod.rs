//! [`Prefork`]: a master above N worker servers. The design and its trade-offs are on the
//! type's docs (what a user reads); here is how the code is cut:
//!
//! * `mod.rs`: the configuration ([`Prefork`]), binding ([`PreforkServer`]), the defaults;
//! * `master.rs`: the supervising process: one thread, signals read from a `signalfd`, reaping,
//!   respawning with back-off, the graceful and the forced stop;
//! * `worker.rs`: a worker's life after the fork: the child preamble, its `signals` thread for
//!   SIGTERM, its [`Server`](crate::Server), `_exit`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::server::ServerBuilder;
use crate::transport::{self, Addr, Listener};

mod master;
mod worker;

/// gunicorn's `graceful_timeout`: how long a SIGTERM'd worker may take to finish.
pub(crate) const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long workers may take to finish after SIGINT (Ctrl-C).
pub(crate) const DEFAULT_QUICK_TIMEOUT: Duration = Duration::from_secs(2);
/// The first delay before replacing a worker that died at start-up.
pub(crate) const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest delay before replacing a worker that died at start-up.
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A worker that exits sooner than this after its fork counts as a start-up failure.
pub(crate) const STARTUP_WINDOW: Duration = Duration::from_secs(1);

/// Pre-forked worker processes, each with its own accept loop: a master process forks N
/// workers up front, each runs its own accept loop — gunicorn's sync workers, Apache's prefork
/// MPM.
///
/// Unlike the other strategies this is not a [`Concurrency`](crate::Concurrency) plugged into
/// one [`Server`](crate::Server): it sits *above* servers. The master binds the port and forks
/// `workers` processes; each worker is simply a [`Server`](crate::Server) built with
/// [`ServerBuilder::from_listener`](crate::ServerBuilder::from_listener) on its copy of the
/// listener, with an inner strategy ([`Sequential`](crate::Sequential) by default, a
/// [`Pool`](crate::Pool) of threads with [`Prefork::threads`], one
/// [`EventLoop`](crate::EventLoop) with [`Prefork::event_loop`]). The master itself never accepts
/// a connection and never touches a client socket: it keeps the listener only to hand it to the
/// workers it forks, and spends its life watching them.
///
/// ```text
///                master (pid 100): signalfd + waitpid, no accept
///        fork ┌──────────┬─────────┴─┬───────────┐
///        worker 101   worker 102   worker 103   worker 104
///        Server<Sequential>: poll(listener) → accept → handle → loop
///                 \_________ one listening socket, shared _________/
/// ```
///
/// # Configure this
/// [`new`](Prefork::new) (the number of workers), [`threads`](Prefork::threads),
/// [`event_loop`](Prefork::event_loop), [`reuse_port`](Prefork::reuse_port),
/// [`exclusive_wakeup`](Prefork::exclusive_wakeup), [`graceful_timeout`](Prefork::graceful_timeout),
/// [`quick_timeout`](Prefork::quick_timeout), [`respawn_backoff`](Prefork::respawn_backoff),
/// [`server_builder`](Prefork::server_builder) (backlog, poll interval of the workers).
///
/// # Call this
/// [`bind`](Prefork::bind), then [`PreforkServer::run`]. The split lets the caller print the
/// bound address (with port 0, the one the kernel chose) before any worker exists.
///
/// # Example
/// ```no_run
/// use socketserver::Prefork;
/// use socketserver::http::{HttpHandler, Request, Response};
///
/// let master = Prefork::new(4).bind("127.0.0.1:8000")?;   // binds; no worker yet
/// println!("listening on {}", master.local_addr());
/// let hello = HttpHandler::new(|_req: &Request| Response::text(200, "hello\n"));
/// master.run(hello)?; // forks 4 workers; returns after SIGTERM, every worker reaped
/// # Ok::<(), socketserver::Error>(())
/// ```
///
/// # The trade-off
/// * **Isolation like [`Forking`](crate::Forking), but the fork is paid once.** A crash, a leak or
///   memory corruption stays in one worker, which the master replaces; but a worker serves
///   thousands of requests, so the `fork` (hundreds of microseconds) is not on the request path.
/// * **Capacity is fixed: `workers × threads`.** With sequential workers, the fifth simultaneous
///   slow request waits in the listen backlog until one of four workers is free: ten one-second
///   requests against four workers come back in *waves* (4, 4, 2), served by the same four pids
///   again and again. This is the honest cost of gunicorn's sync worker; `threads(m)` multiplies
///   capacity without more processes.
/// * **Memory per worker.** Each worker starts as a copy-on-write copy of the master, so pages
///   the master filled before forking are shared until someone writes them; what a worker
///   allocates afterwards is its own. Four workers with a 50 MB cache each use 200 MB.
/// * **Shared nothing.** Each worker has its own caches, counters and connection pools. A value
///   cached by worker 101 is not seen by worker 102; state that must be shared lives outside
///   (a database, a file, shared memory).
///
/// # Event-loop workers: nginx's architecture
/// With [`event_loop`](Prefork::event_loop) each worker is a single-threaded event loop (an
/// [`EventLoop`](crate::EventLoop) of one loop) that accepts from the shared listener itself,
/// registered in its own epoll set with `EPOLLEXCLUSIVE` (or from its own socket with
/// [`reuse_port`](Prefork::reuse_port)): a master that only supervises, and N workers, one per
/// core, each holding thousands of connections — nginx's `master process` and
/// `worker_processes`. Capacity is no longer `workers × threads`: a worker answers every
/// client whose service waits on a timer ([`Reply::after`](crate::http::Reply::after)) at
/// once, and only a service that blocks stalls (the clients of its worker alone, where one
/// process of loops would stall them all). Only sans-IO handlers (the HTTP layer) run on a
/// loop; see [`EventLoop`](crate::EventLoop).
///
/// *When to pick it:* the process isolation of [`Forking`](crate::Forking) at a steady, high
/// request rate: a production web application behind a proxy, sized to the cores (gunicorn's
/// rule of thumb is 2 × cores + 1 sync workers). Not for many slow or idle clients: each one
/// holds a whole worker, so use `threads(m)` or a thread [`Pool`](crate::Pool) for those.
///
/// # The thundering herd: `EPOLLEXCLUSIVE` and `SO_REUSEPORT`
/// With one shared listener, every idle worker sleeps on the *same* socket. If they sleep in
/// plain `poll`, one new connection wakes them all (`poll` has no "wake just one"); each calls
/// `accept`, one wins, and the others get `EAGAIN` (the listener is non-blocking for exactly this
/// reason: a blocking `accept` would hang the losers) and go back to sleep. With N workers that
/// is N wake-ups and N-1 wasted `accept` calls per connection: harmless with 4 workers,
/// measurable with 32. So by default ([`Prefork::exclusive_wakeup`]) each worker waits in
/// `epoll_wait` on an epoll instance of its own where the listener is registered with
/// `EPOLLEXCLUSIVE` (Linux 4.5): the kernel then wakes one worker that is waiting (a busy one
/// is skipped, not woken), and the rest sleep on. `--wake-all` in `prefork_server` turns it off,
/// to see the difference.
///
/// What it costs, measured (system calls, wake-ups and requests per second with `poll`,
/// `EPOLLEXCLUSIVE` and `SO_REUSEPORT`): see docs/costs.md, "Prefork: the thundering herd";
/// `tests/prefork.rs` counts the wake-ups (voluntary context switches of the workers) so that
/// the herd cannot come back unnoticed. Under a burst, when every worker is busy anyway, the
/// herd has nobody to wake and all modes waste almost nothing.
///
/// [`Prefork::reuse_port`] gives each worker its *own* listening socket on the same port
/// (`SO_REUSEPORT`); the kernel hashes each new connection to exactly one socket, so exactly one
/// worker wakes. The price: a connection hashed to a busy worker waits for *that* worker even if
/// another is idle (no work stealing), and connections still queued on a worker's socket when it
/// dies are reset (the kernel does not hand them to a sibling unless
/// `net.ipv4.tcp_migrate_req` is set). In this mode the master holds a socket bound to the port
/// but *not listening*: it reserves the port (and resolves port 0) without taking a share of the
/// connections, which it would never accept.
///
/// # The master: one thread, signals through a `signalfd`
/// The master forks, so it must stay single-threaded (a lock held by another thread at the
/// instant of a fork stays locked forever in the child). That rules out a `signals` thread. A
/// signal *handler* that does the work is ruled out too: it may only call async-signal-safe
/// functions, so it cannot log, allocate or touch the worker table, and reaping inside one races
/// with the main loop (gunicorn #3198). Instead the master
/// *blocks* SIGCHLD, SIGTERM, SIGINT, SIGTTIN and SIGTTOU and reads them as data from a
/// `signalfd(2)`, which it `poll`s with a timeout. The loop is then ordinary code, and the timeout
/// drives its timers: when to respawn after a back-off, when a graceful stop has lasted long
/// enough.
///
/// | signal to the master | effect |
/// |---|---|
/// | SIGTERM | graceful stop: close the master's listener; SIGTERM every worker (each finishes its requests in flight, exits 0); SIGKILL those left after [`graceful_timeout`](Prefork::graceful_timeout) (30 s, gunicorn's); reap all; `run` returns `Ok` |
/// | SIGINT (Ctrl-C) | the same with [`quick_timeout`](Prefork::quick_timeout) (2 s) |
/// | a second SIGTERM or SIGINT | SIGKILL every worker now, reap, return `Ok` |
/// | SIGTTIN | one worker more |
/// | SIGTTOU | one worker fewer (never below 1): the oldest gets SIGTERM and finishes its requests |
/// | SIGCHLD | reap; a worker that died unasked is replaced |
///
/// Why SIGINT is not immediate, as in gunicorn: the example contract promises that Ctrl-C
/// finishes requests in flight; two seconds covers normal requests, and a second Ctrl-C is
/// immediate. Standard signals do not queue: two SIGTTIN sent back to back may arrive as one.
///
/// # Reaping and respawning
/// Every wake-up of the loop reaps with `waitpid(-1, WNOHANG)` until nothing is left to collect
/// (signals coalesce: one SIGCHLD may stand for three dead workers). A worker that died while the
/// master was not stopping or retiring it is replaced. A worker that dies within a second of its
/// fork is a *start-up* failure (a port it cannot bind, a bad configuration): replacing it at once
/// would fork-bomb, so the master waits 0.1 s, then 0.2, 0.4, ... up to 5 s
/// ([`respawn_backoff`](Prefork::respawn_backoff)), and logs each delay. A worker that lived
/// longer resets the back-off. Like [`Forking`](crate::Forking), the master assumes it owns every
/// child of its process.
///
/// # The workers
/// A worker starts as a copy of the master at the `fork` and never returns from
/// [`PreforkServer::run`]: it serves until told to stop, then `_exit`s (status 0 after a graceful
/// stop, 1 after an error), without running the destructors of the master's state it copied.
/// Right after the fork it:
/// 1. asks the kernel for SIGTERM when the master dies (`PR_SET_PDEATHSIG`), then checks that the
///    master did not die *before* that call: no orphaned workers;
/// 2. closes its copy of the master's `signalfd` (the master's signals are none of its business);
/// 3. ignores SIGINT: Ctrl-C in a terminal signals the whole process group, and the master alone
///    decides how to stop (as the children of [`Forking`](crate::Forking) do);
/// 4. keeps SIGTERM blocked and waits for it on a `signals` thread: the first SIGTERM stops the
///    worker's `serve_forever`, its in-flight requests finish in `server_close`, it exits 0; a
///    second one `_exit`s at once. (The crate's
///    [`shutdown_on_signals`](crate::shutdown_on_signals), a signal handler, also takes SIGINT,
///    which a worker must leave to the master; and a worker forks nothing, so the thread costs
///    it no fork's page faults.)
/// 5. builds its [`Server`](crate::Server) and serves.
#[derive(Debug, Clone)]
pub struct Prefork {
    workers: usize,
    threads: Option<usize>,
    /// `Some(offload)`: each worker is one event loop with `offload` offload workers.
    event_loop: Option<usize>,
    reuse_port: bool,
    exclusive_wakeup: bool,
    graceful_timeout: Duration,
    quick_timeout: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    builder: ServerBuilder,
}

impl Prefork {
    /// `workers` processes (raised to 1 if 0), each serving one request at a time
    /// ([`Sequential`](crate::Sequential), gunicorn's sync worker); the timeouts and back-off at their defaults.
    pub fn new(workers: usize) -> Prefork {
        Prefork {
            workers: workers.max(1),
            threads: None,
            event_loop: None,
            reuse_port: false,
            exclusive_wakeup: true,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
            quick_timeout: DEFAULT_QUICK_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            builder: ServerBuilder::new(),
        }
    }

    /// Each worker runs requests on a [`Pool`](crate::Pool) of `m` threads (gunicorn's gthread worker)
    /// instead of one at a time: capacity becomes `workers × m`. Raised to 1 if 0.
    pub fn threads(mut self, m: usize) -> Prefork {
        self.threads = Some(m.max(1));
        self
    }

    /// Each worker is one single-threaded event loop ([`EventLoop`](crate::EventLoop) with one
    /// loop, accepting from the listener itself; see [`Prefork`], "Event-loop workers"), with
    /// `offload` offload workers for [`Reply::offload`](crate::http::Reply::offload) (0: none;
    /// offloaded work then runs on the loop). Takes precedence over [`threads`](Prefork::threads).
    pub fn event_loop(mut self, offload: usize) -> Prefork {
        self.event_loop = Some(offload);
        self
    }

    /// With `true`, each worker binds its own `SO_REUSEPORT` socket and the kernel spreads
    /// connections across them (no thundering herd; see [`Prefork`], "The thundering herd"). Default
    /// `false`: one listener, shared.
    pub fn reuse_port(mut self, on: bool) -> Prefork {
        self.reuse_port = on;
        self
    }

    /// With `true` (the default), workers sharing the listener wait for it with `epoll` and
    /// `EPOLLEXCLUSIVE`, so a new connection wakes one idle worker instead of all of them
    /// ([`ServerBuilder::exclusive_wakeup`]). `false` brings back the thundering herd of plain
    /// `poll`, to measure it. Without effect with [`reuse_port`](Prefork::reuse_port), where
    /// every worker has a socket of its own.
    pub fn exclusive_wakeup(mut self, on: bool) -> Prefork {
        self.exclusive_wakeup = on;
        self
    }

    /// How long workers may take to finish their requests after SIGTERM (to the master, or to
    /// a worker retired by SIGTTOU) before they are killed. Default 30 s, gunicorn's.
    pub fn graceful_timeout(mut self, d: Duration) -> Prefork {
        self.graceful_timeout = d;
        self
    }

    /// The same after SIGINT (Ctrl-C). Default 2 s.
    pub fn quick_timeout(mut self, d: Duration) -> Prefork {
        self.quick_timeout = d;
        self
    }

    /// The delay before replacing a worker that died at start-up: `initial`, doubled after each
    /// further start-up failure, at most `max`. Default 0.1 s to 5 s.
    pub fn respawn_backoff(mut self, initial: Duration, max: Duration) -> Prefork {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// The configuration of each worker's [`Server`](crate::Server) (`poll_interval`, `request_queue_size`,
    /// which also sizes the shared listener's backlog). Its `reuse_port` and `exclusive_wakeup`
    /// are ignored: use [`Prefork::reuse_port`] and [`Prefork::exclusive_wakeup`].
    pub fn server_builder(mut self, builder: ServerBuilder) -> Prefork {
        self.builder = builder;
        self
    }

    /// The number of workers the master starts with.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Binds `addr` (the first address it resolves to) in the calling process, the future
    /// master. With the shared listener this is the listening socket every worker inherits;
    /// with [`reuse_port`](Prefork::reuse_port) a bound, non-listening socket that reserves the
    /// port. No process is forked yet.
    ///
    /// # Errors
    /// [`Error::Bind`] if the port cannot be bound; [`Error::Io`] if `addr` does not resolve.
    pub fn bind(self, addr: impl ToSocketAddrs) -> Result<PreforkServer> {
        let addr = transport::first_addr(addr)?;
        let held = if self.reuse_port {
            Held::Reserved(reserve_port(addr)?)
        } else {
            let mut options = self.builder.listen_options();
            options.reuse_port = false;
            Held::Shared(transport::bind_tcp(addr, options)?)
        };
        let local_addr =
            match &held {
                Held::Shared(l) => l.local_addr()?,
                Held::Reserved(s) => Addr::Inet(s.local_addr()?.as_socket().ok_or_else(|| {
                    Error::Io(std::io::Error::other("the reserved socket has no IP address"))
                })?),
            };
        // Start the clock here, so that the offsets every worker logs (each inherits this
        // epoch through the fork) are on the master's time line.
        crate::trace::epoch();
        Ok(PreforkServer { config: self, local_addr, held })
    }

    /// Binds a Unix stream socket at `path` in the calling process, the future master: the
    /// one listener every worker inherits (as [`ServerBuilder::bind_unix`](crate::ServerBuilder::bind_unix)
    /// makes it: owner-only unless `unix_mode` says otherwise, a stale file replaced). The
    /// master removes the socket file when it stops. No process is forked yet.
    ///
    /// # Errors
    /// As [`ServerBuilder::bind_unix`](crate::ServerBuilder::bind_unix); and
    /// [`Error::InvalidConfig`] with [`reuse_port`](Prefork::reuse_port), which needs TCP.
    pub fn bind_unix(self, path: impl AsRef<Path>) -> Result<PreforkServer> {
        if self.reuse_port {
            return Err(Error::InvalidConfig("reuse_port needs TCP: Unix socket workers share one listener"));
        }
        let mut options = self.builder.listen_options();
        options.reuse_port = false;
        let listener = transport::bind_unix(path.as_ref(), options)?;
        let local_addr = listener.local_addr()?;
        let held = Held::Shared(listener);
        crate::trace::epoch();
        Ok(PreforkServer { config: self, local_addr, held })
    }
}

/// What the master holds on to for its workers.
#[derive(Debug)]
enum Held {
    /// The one listening socket every worker inherits and accepts on.
    Shared(Listener),
    /// `SO_REUSEPORT` mode: a socket bound to the port but not listening. It keeps the port
    /// (port 0 resolved) while workers come and go, and, not listening, gets no connections.
    Reserved(Socket),
}

impl Held {
    fn raw_fd(&self) -> RawFd {
        match self {
            Held::Shared(l) => l.as_raw_fd(),
            Held::Reserved(s) => s.as_raw_fd(),
        }
    }
}

/// Binds `addr` with `SO_REUSEPORT` but does not listen (see [`Held::Reserved`]).
fn reserve_port(addr: SocketAddr) -> Result<Socket> {
    let fail = |source| Error::Bind { addr: Addr::Inet(addr), source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    // Every socket sharing a port with SO_REUSEPORT must set it, this one included.
    socket.set_reuse_port(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    Ok(socket)
}

/// A bound [`Prefork`], ready to fork its workers with [`run`](PreforkServer::run).
#[derive(Debug)]
pub struct PreforkServer {
    config: Prefork,
    local_addr: Addr,
    held: Held,
}

impl PreforkServer {
    /// The address the workers serve; with port 0, the port the kernel chose.
    pub fn local_addr(&self) -> Addr {
        self.local_addr.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_clamped_to_sense() {
        let p = Prefork::new(0).threads(0).respawn_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(p.workers(), 1);
        assert_eq!(p.threads, Some(1));
        assert_eq!((p.backoff_initial, p.backoff_max), (Duration::from_secs(2), Duration::from_secs(2)));
    }
}
