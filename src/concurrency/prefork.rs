//! [`Prefork`]: a master process forks N workers up front, each runs its own accept loop —
//! gunicorn's sync workers, Apache's prefork MPM.
//!
//! Unlike the other strategies this is not a [`Concurrency`] plugged into
//! one [`Server`](crate::Server): it sits *above* servers. The master binds the port and forks
//! `workers` processes; each worker is simply a [`Server`](crate::Server) built with
//! [`ServerBuilder::from_listener`] on its copy of the listener, with an inner strategy ([`Sequential`] by default, a [`Pool`] of threads
//! with [`Prefork::threads`]). The master itself never accepts a connection and never touches a client
//! socket: it keeps the listener only to hand it to the workers it forks, and spends its life
//! watching them.
//!
//! ```text
//!                master (pid 100): signalfd + waitpid, no accept
//!        fork ┌──────────┬─────────┴─┬───────────┐
//!        worker 101   worker 102   worker 103   worker 104
//!        Server<Sequential>: poll(listener) → accept → handle → loop
//!                 \_________ one listening socket, shared _________/
//! ```
//!
//! # Example
//! ```no_run
//! use socketserver::Prefork;
//! use socketserver::http::{HttpHandler, Request, Response};
//!
//! let master = Prefork::new(4).bind("127.0.0.1:8000")?;   // binds; no worker yet
//! println!("listening on {}", master.local_addr());
//! master.run(HttpHandler::new(|_: &Request| Response::text(200, "hello\n")))?; // forks 4, returns after SIGTERM
//! # Ok::<(), socketserver::Error>(())
//! ```
//!
//! # The trade-off
//! * **Isolation like [`Forking`](super::Forking), but the fork is paid once.** A crash, a leak or
//!   memory corruption stays in one worker, which the master replaces; but a worker serves
//!   thousands of requests, so the `fork` (hundreds of microseconds) is not on the request path.
//! * **Capacity is fixed: `workers × threads`.** With sequential workers, the fifth simultaneous
//!   slow request waits in the listen backlog until one of four workers is free: ten one-second
//!   requests against four workers come back in *waves* (4, 4, 2), served by the same four pids
//!   again and again. This is the honest cost of gunicorn's sync worker; `threads(m)` multiplies
//!   capacity without more processes.
//! * **Memory per worker.** Each worker starts as a copy-on-write copy of the master, so pages
//!   the master filled before forking are shared until someone writes them; what a worker
//!   allocates afterwards is its own. Four workers with a 50 MB cache each use 200 MB.
//! * **Shared nothing.** Each worker has its own caches, counters and connection pools. A value
//!   cached by worker 101 is not seen by worker 102; state that must be shared lives outside
//!   (a database, a file, shared memory).
//!
//! *When to pick it:* the process isolation of [`Forking`](super::Forking) at a steady, high
//! request rate: a production web application behind a proxy, sized to the cores (gunicorn's
//! rule of thumb is 2 × cores + 1 sync workers). Not for many slow or idle clients: each one
//! holds a whole worker, so use `threads(m)` or a thread [`Pool`] for those.
//!
//! # The thundering herd: `EPOLLEXCLUSIVE` and `SO_REUSEPORT`
//! With one shared listener, every idle worker sleeps on the *same* socket. If they sleep in
//! plain `poll`, one new connection wakes them all (`poll` has no "wake just one"); each calls
//! `accept`, one wins, and the others get `EAGAIN` (the listener is non-blocking for exactly this
//! reason: a blocking `accept` would hang the losers) and go back to sleep. With N workers that
//! is N wake-ups and N-1 wasted `accept` calls per connection: harmless with 4 workers,
//! measurable with 32. So by default ([`Prefork::exclusive_wakeup`]) each worker waits in
//! `epoll_wait` on an epoll instance of its own where the listener is registered with
//! `EPOLLEXCLUSIVE` (Linux 4.5): the kernel then wakes one worker that is waiting (a busy one
//! is skipped, not woken), and the rest sleep on. `--wake-all` in `prefork_server` turns it off,
//! to see the difference.
//!
//! Measured here (2-CPU VM, release build, 16 workers, `strace -c -f` over 200 `GET /hello` one
//! after another): with `poll` (`--wake-all`), 2482 `poll` returns and 2651 `accept` calls, 2451
//! of them `EAGAIN`; with `EPOLLEXCLUSIVE`, 263 `epoll_wait` returns and 400 `accept` calls, 200
//! `EAGAIN` (each winner's own second call, which finds the queue empty and ends its accept
//! batch), the same as with `SO_REUSEPORT`. With 32 workers under `wrk -c32 -H 'Connection:
//! close'`: 27k requests/s with `poll`, 37k with `EPOLLEXCLUSIVE`, 47k with `SO_REUSEPORT`.
//! `tests/prefork.rs` counts the wake-ups (voluntary context switches of the workers):
//! about 16 per request with `poll`, 1 to 2 with `EPOLLEXCLUSIVE`. Under a burst, when every
//! worker is busy anyway, the herd has nobody to wake and all modes waste almost nothing.
//!
//! [`Prefork::reuse_port`] gives each worker its *own* listening socket on the same port
//! (`SO_REUSEPORT`); the kernel hashes each new connection to exactly one socket, so exactly one
//! worker wakes. The price: a connection hashed to a busy worker waits for *that* worker even if
//! another is idle (no work stealing), and connections still queued on a worker's socket when it
//! dies are reset (the kernel does not hand them to a sibling unless
//! `net.ipv4.tcp_migrate_req` is set). In this mode the master holds a socket bound to the port
//! but *not listening*: it reserves the port (and resolves port 0) without taking a share of the
//! connections, which it would never accept.
//!
//! # The master: one thread, signals through a `signalfd`
//! The master forks, so it must stay single-threaded (a lock held by another thread at the
//! instant of a fork stays locked forever in the child). That rules out the `signals` thread of
//! [`shutdown_on_signals`](crate::shutdown_on_signals). A signal *handler* is ruled out too: it
//! may only call async-signal-safe functions, so it cannot log, allocate or touch the worker
//! table, and reaping inside one races with the main loop (gunicorn #3198). Instead the master
//! *blocks* SIGCHLD, SIGTERM, SIGINT, SIGTTIN and SIGTTOU and reads them as data from a
//! `signalfd(2)`, which it `poll`s with a timeout. The loop is then ordinary code, and the timeout
//! drives its timers: when to respawn after a back-off, when a graceful stop has lasted long
//! enough.
//!
//! | signal to the master | effect |
//! |---|---|
//! | SIGTERM | graceful stop: close the master's listener; SIGTERM every worker (each finishes its requests in flight, exits 0); SIGKILL those left after [`graceful_timeout`](Prefork::graceful_timeout) (30 s, gunicorn's); reap all; `run` returns `Ok` |
//! | SIGINT (Ctrl-C) | the same with [`quick_timeout`](Prefork::quick_timeout) (2 s) |
//! | a second SIGTERM or SIGINT | SIGKILL every worker now, reap, return `Ok` |
//! | SIGTTIN | one worker more |
//! | SIGTTOU | one worker fewer (never below 1): the oldest gets SIGTERM and finishes its requests |
//! | SIGCHLD | reap; a worker that died unasked is replaced |
//!
//! Why SIGINT is not immediate, as in gunicorn: the example contract promises that Ctrl-C
//! finishes requests in flight; two seconds covers normal requests, and a second Ctrl-C is
//! immediate. Standard signals do not queue: two SIGTTIN sent back to back may arrive as one.
//!
//! # Reaping and respawning
//! Every wake-up of the loop reaps with `waitpid(-1, WNOHANG)` until nothing is left to collect
//! (signals coalesce: one SIGCHLD may stand for three dead workers). A worker that died while the
//! master was not stopping or retiring it is replaced. A worker that dies within a second of its
//! fork is a *start-up* failure (a port it cannot bind, a bad configuration): replacing it at once
//! would fork-bomb, so the master waits 0.1 s, then 0.2, 0.4, ... up to 5 s
//! ([`respawn_backoff`](Prefork::respawn_backoff)), and logs each delay. A worker that lived
//! longer resets the back-off. Like [`Forking`](super::Forking), the master assumes it owns every
//! child of its process.
//!
//! # The workers
//! A worker starts as a copy of the master at the `fork` and never returns from
//! [`PreforkServer::run`]: it serves until told to stop, then `_exit`s (status 0 after a graceful
//! stop, 1 after an error), without running the destructors of the master's state it copied.
//! Right after the fork it:
//! 1. asks the kernel for SIGTERM when the master dies (`PR_SET_PDEATHSIG`), then checks that the
//!    master did not die *before* that call: no orphaned workers;
//! 2. closes its copy of the master's `signalfd` (the master's signals are none of its business);
//! 3. ignores SIGINT: Ctrl-C in a terminal signals the whole process group, and the master alone
//!    decides how to stop (as the children of [`Forking`](super::Forking) do);
//! 4. keeps SIGTERM blocked and waits for it on a `signals` thread, like
//!    [`shutdown_on_signals`](crate::shutdown_on_signals): the first SIGTERM stops the worker's
//!    `serve_forever`, its in-flight requests finish in `server_close`, it exits 0; a second one
//!    `_exit`s at once. (The crate's `shutdown_on_signals` also takes SIGINT, and its second
//!    signal calls `exit`, which a forked process must not; hence this small copy.)
//! 5. builds its [`Server`](crate::Server) and serves.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use socket2::{Domain, Protocol, Socket, Type};

use super::{Concurrency, Pool, Sequential};
use crate::error::{Error, Result};
use crate::handler::RequestHandler;
use crate::listener;
use crate::server::ServerBuilder;
use crate::trace::Who;

/// gunicorn's `graceful_timeout`: how long a SIGTERM'd worker may take to finish.
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long workers may take to finish after SIGINT (Ctrl-C).
pub const DEFAULT_QUICK_TIMEOUT: Duration = Duration::from_secs(2);
/// The first delay before replacing a worker that died at start-up.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest delay before replacing a worker that died at start-up.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A worker that exits sooner than this after its fork counts as a start-up failure.
pub const STARTUP_WINDOW: Duration = Duration::from_secs(1);

/// Pre-forked worker processes, each with its own accept loop (gunicorn sync / Apache prefork).
///
/// # Configure this
/// [`new`](Prefork::new) (the number of workers), [`threads`](Prefork::threads),
/// [`reuse_port`](Prefork::reuse_port), [`exclusive_wakeup`](Prefork::exclusive_wakeup),
/// [`graceful_timeout`](Prefork::graceful_timeout),
/// [`quick_timeout`](Prefork::quick_timeout), [`respawn_backoff`](Prefork::respawn_backoff),
/// [`server_builder`](Prefork::server_builder) (backlog, poll interval of the workers).
///
/// # Call this
/// [`bind`](Prefork::bind), then [`PreforkServer::run`]. The split lets the caller print the
/// bound address (with port 0, the one the kernel chose) before any worker exists.
#[derive(Debug, Clone)]
pub struct Prefork {
    workers: usize,
    threads: Option<usize>,
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
    /// ([`Sequential`], gunicorn's sync worker); the timeouts and back-off at their defaults.
    pub fn new(workers: usize) -> Prefork {
        Prefork {
            workers: workers.max(1),
            threads: None,
            reuse_port: false,
            exclusive_wakeup: true,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT,
            quick_timeout: DEFAULT_QUICK_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            builder: ServerBuilder::new(),
        }
    }

    /// Each worker runs requests on a [`Pool`] of `m` threads (gunicorn's gthread worker)
    /// instead of one at a time: capacity becomes `workers × m`. Raised to 1 if 0.
    pub fn threads(mut self, m: usize) -> Prefork {
        self.threads = Some(m.max(1));
        self
    }

    /// With `true`, each worker binds its own `SO_REUSEPORT` socket and the kernel spreads
    /// connections across them (no thundering herd; see the [module docs](self)). Default
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
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "address resolves to nothing"))
        })?;
        let held = if self.reuse_port {
            Held::Reserved(reserve_port(addr)?)
        } else {
            let mut options = self.builder.listen_options();
            options.reuse_port = false;
            Held::Shared(listener::bind(addr, options)?)
        };
        let local_addr = match &held {
            Held::Shared(l) => l.local_addr()?,
            Held::Reserved(s) => s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| Error::Io(std::io::Error::other("the reserved socket has no IP address")))?,
        };
        // Start the clock here, so that the offsets every worker logs (each inherits this
        // epoch through the fork) are on the master's time line.
        crate::trace::epoch();
        Ok(PreforkServer { config: self, local_addr, held })
    }
}

/// What the master holds on to for its workers.
#[derive(Debug)]
enum Held {
    /// The one listening socket every worker inherits and accepts on.
    Shared(TcpListener),
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
    let fail = |source| Error::Bind { addr, source };
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
    local_addr: SocketAddr,
    held: Held,
}

impl PreforkServer {
    /// The address the workers serve; with port 0, the port the kernel chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Becomes the master: forks the workers, each serving `handler`, and supervises them
    /// until SIGTERM or SIGINT (see the [module docs](self) for every signal). Returns in the
    /// master only, with `Ok(())` once every worker has exited and been reaped; a worker never
    /// returns from here (it `_exit`s).
    ///
    /// Call it from a **single-threaded** process (no signal thread, no thread pool yet): the
    /// master forks, and receives its signals by blocking them in the calling thread. On return
    /// the calling thread's signal mask is restored.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the process has other threads; [`Error::Io`] if the signal
    /// machinery fails. On every error path the workers are killed and reaped first.
    pub fn run<H: RequestHandler>(self, handler: H) -> Result<()> {
        // /proc/self/task has one entry per thread of this process.
        let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1);
        if threads > 1 {
            return Err(Error::InvalidConfig(
                "Prefork::run needs a single-threaded process: it forks, and it reads its signals \
                 by blocking them in the calling thread",
            ));
        }
        // A parent that ignores SIGCHLD (SIG_IGN) makes the kernel reap our workers itself: we
        // would never learn that one died. Put back the default, which does not auto-reap.
        // SAFETY: SIG_DFL installs no handler code, so no async-signal-safety question arises;
        // the process is single-threaded (checked above), so nothing races the change.
        unsafe { nix::sys::signal::signal(Signal::SIGCHLD, SigHandler::SigDfl) }?;

        let mut master_signals = SigSet::empty();
        for s in MASTER_SIGNALS {
            master_signals.add(s);
        }
        // Blocked signals stay pending instead of running a default action or a handler; the
        // signalfd then hands them to us as data, in the main loop, where any code is allowed.
        let saved_mask = master_signals.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        // Non-blocking: the loop drains it until EAGAIN. CLOEXEC: no exec'd program inherits it.
        let signals =
            match SignalFd::with_flags(&master_signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = saved_mask.thread_set_mask();
                    return Err(e.into());
                }
            };
        let target = self.config.workers;
        log::info!(
            "master {}: {} workers × {}, {}; TTIN/TTOU add/remove one, TERM stops gracefully",
            Who::current(),
            target,
            match self.config.threads {
                None => "1 request at a time".to_string(),
                Some(m) => format!("up to {m} threads"),
            },
            if self.config.reuse_port { "one SO_REUSEPORT socket each" } else { "one shared listener" },
        );
        let mut master = Master {
            config: self.config,
            addr: self.local_addr,
            held: Some(self.held),
            handler: Arc::new(handler),
            signals,
            saved_mask,
            pid: getpid(),
            workers: Vec::new(),
            target,
            stop: None,
            backoff: Duration::ZERO,
            respawn_at: Instant::now(),
            next_serial: 0,
        };
        // On an error (or a panic) `Master`'s Drop kills and reaps the workers and restores the
        // signal mask; on success there are no workers left and Drop only restores the mask.
        master.supervise()
    }
}

/// The signals the master blocks and reads from its signalfd.
const MASTER_SIGNALS: [Signal; 5] =
    [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGTTIN, Signal::SIGTTOU];

/// Which stop is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: `graceful_timeout`.
    Graceful,
    /// SIGINT: `quick_timeout`.
    Quick,
}

/// The master's record of one worker.
#[derive(Debug)]
struct Worker {
    pid: Pid,
    born: Instant,
    /// Order of birth, to pick the oldest for SIGTTOU.
    serial: u64,
    /// Sent SIGTERM (retired by SIGTTOU, or the master is stopping); SIGKILL at this instant.
    kill_at: Option<Instant>,
    /// Retired by SIGTTOU: its exit is expected and it is not replaced.
    retiring: bool,
    /// Sent SIGKILL already.
    killed: bool,
}

/// The master's state. Lives only in the master: a worker never returns into it.
struct Master<H> {
    config: Prefork,
    addr: SocketAddr,
    /// `None` once a stop began: the master closes its copy of the listener then.
    held: Option<Held>,
    handler: Arc<H>,
    signals: SignalFd,
    saved_mask: SigSet,
    pid: Pid,
    workers: Vec<Worker>,
    /// How many non-retiring workers there should be (changed by SIGTTIN/SIGTTOU).
    target: usize,
    stop: Option<Stop>,
    /// Current start-up-failure delay; zero when workers are healthy.
    backoff: Duration,
    /// No worker is forked before this instant.
    respawn_at: Instant,
    next_serial: u64,
}

impl<H: RequestHandler> Master<H> {
    /// The master loop: reap, keep the worker count, enforce deadlines, sleep until a signal or
    /// the next deadline.
    fn supervise(&mut self) -> Result<()> {
        loop {
            self.reap();
            if self.stop.is_some() {
                if self.workers.is_empty() {
                    log::info!("master {}: stopped, every worker reaped", Who::current());
                    return Ok(());
                }
            } else {
                self.spawn_missing();
            }
            self.kill_overdue();

            let timeout = match self.next_deadline() {
                // Round up: a 0.4 ms remainder must not become a busy 0 ms poll.
                Some(at) => {
                    let ms = at.saturating_duration_since(Instant::now()).as_millis().saturating_add(1);
                    PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                // Our signals are blocked, so only a signal we do not handle (SIGSTOP/SIGCONT
                // from a debugger) can interrupt: just go round again.
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            // Drain every pending signal: several may be waiting.
            while let Some(info) = self.signals.read_signal()? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(signal) => self.on_signal(signal),
                    Err(_) => log::warn!("master: unexpected signal number {}", info.ssi_signo),
                }
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            // Nothing to do here: the loop reaps on every wake-up.
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT if self.stop.is_some() => {
                log::warn!("master: {signal} again: killing every worker now");
                for w in self.workers.iter_mut().filter(|w| !w.killed) {
                    let _ = kill(w.pid, Signal::SIGKILL);
                    w.killed = true;
                }
            }
            Signal::SIGTERM | Signal::SIGINT => {
                let (stop, timeout) = if signal == Signal::SIGTERM {
                    (Stop::Graceful, self.config.graceful_timeout)
                } else {
                    (Stop::Quick, self.config.quick_timeout)
                };
                log::info!(
                    "master: {signal}: stopping: workers finish their requests in flight (up to {:.1} s), \
                     then exit (send it again to kill them now)",
                    timeout.as_secs_f64()
                );
                self.stop = Some(stop);
                // Close our copy of the listener: once the workers have closed theirs the port
                // is closed and clients are refused, instead of queueing in a backlog that
                // nobody will ever accept from.
                self.held = None;
                let deadline = Instant::now() + timeout;
                for w in &mut self.workers {
                    terminate(w, deadline);
                }
            }
            Signal::SIGTTIN if self.stop.is_none() => {
                self.target += 1;
                log::info!("master: SIGTTIN: {} workers", self.target);
            }
            Signal::SIGTTOU if self.stop.is_none() => {
                if self.target <= 1 {
                    log::info!("master: SIGTTOU: already at 1 worker, the minimum");
                    return;
                }
                self.target -= 1;
                // The oldest goes first, as in gunicorn: it has had the most time to grow.
                let deadline = Instant::now() + self.config.graceful_timeout;
                if let Some(w) = self
                    .workers
                    .iter_mut()
                    .filter(|w| !w.retiring && w.kill_at.is_none())
                    .min_by_key(|w| w.serial)
                {
                    w.retiring = true;
                    log::info!("master: SIGTTOU: {} workers; retiring worker {}", self.target, w.pid);
                    terminate(w, deadline);
                }
            }
            other => log::debug!("master: {other} ignored while stopping"),
        }
    }

    /// Collects every exited worker: `waitpid(-1, WNOHANG)` until nothing is left.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.on_exit(pid, status);
                    }
                }
                Err(Errno::EINTR) => continue,
                // No children at all: any we thought we had were reaped by someone else in this
                // process. Forget them rather than wait forever.
                Err(Errno::ECHILD) => {
                    if !self.workers.is_empty() {
                        log::error!("master: {} workers vanished (reaped elsewhere?)", self.workers.len());
                        self.workers.clear();
                    }
                    return;
                }
                Err(e) => {
                    log::error!("master: waitpid failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, status: WaitStatus) {
        let Some(i) = self.workers.iter().position(|w| w.pid == pid) else {
            log::debug!("master: reaped {pid}, not a worker: {}", describe(status));
            return;
        };
        let w = self.workers.swap_remove(i);
        let lived = w.born.elapsed();
        if self.stop.is_some() || w.retiring {
            log::info!(
                "master: worker {pid} exited ({}) after {:.1} s",
                describe(status),
                lived.as_secs_f64()
            );
        } else if lived < STARTUP_WINDOW {
            // Dying at start-up usually means it will die again: don't fork-bomb.
            self.backoff = next_backoff(self.backoff, self.config.backoff_initial, self.config.backoff_max);
            self.respawn_at = Instant::now() + self.backoff;
            log::warn!(
                "master: worker {pid} died at start-up ({}, {:.2} s after fork); next worker in {:.1} s",
                describe(status),
                lived.as_secs_f64(),
                self.backoff.as_secs_f64()
            );
        } else {
            self.backoff = Duration::ZERO;
            log::warn!(
                "master: worker {pid} died ({}) after {:.1} s; replacing it",
                describe(status),
                lived.as_secs_f64()
            );
        }
    }

    /// Forks workers until `target` non-retiring ones exist, unless a back-off is running.
    fn spawn_missing(&mut self) {
        while self.workers.iter().filter(|w| !w.retiring).count() < self.target {
            if Instant::now() < self.respawn_at {
                return;
            }
            if let Err(e) = self.spawn() {
                // EAGAIN (process limit) or ENOMEM: treat it like a start-up failure, back off.
                self.backoff =
                    next_backoff(self.backoff, self.config.backoff_initial, self.config.backoff_max);
                self.respawn_at = Instant::now() + self.backoff;
                log::error!("master: fork failed: {e}; retrying in {:.1} s", self.backoff.as_secs_f64());
                return;
            }
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let Some(held) = &self.held else { return Ok(()) };
        let setup = WorkerSetup {
            master: self.pid,
            addr: self.addr,
            listener_fd: match held {
                Held::Shared(_) => Some(held.raw_fd()),
                Held::Reserved(_) => None,
            },
            close_fds: match held {
                Held::Shared(_) => [self.signals.as_raw_fd(), -1],
                Held::Reserved(s) => [self.signals.as_raw_fd(), s.as_raw_fd()],
            },
            worker_mask: {
                // The caller's mask, with SIGTERM kept blocked (the worker's `signals` thread
                // waits for it) and SIGINT unblocked (it is ignored in the worker).
                let mut m = self.saved_mask;
                m.add(Signal::SIGTERM);
                m.remove(Signal::SIGINT);
                m
            },
            threads: self.config.threads,
            builder: self
                .config
                .builder
                .clone()
                .exclusive_wakeup(self.config.exclusive_wakeup && !self.config.reuse_port),
            reuse_port: self.config.reuse_port,
        };
        // Anything in our stdio buffers would be copied into the worker and written twice.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: after fork the child may rely only on what survives it: its one thread, a copy
        // of memory, and locks in the state they were in. The master is single-threaded (checked
        // in `run`), so no lock can be held by a thread that vanished. The child never returns
        // into the master's loop or runs its destructors: worker_main ends in _exit.
        match unsafe { fork() }? {
            ForkResult::Child => worker_main(setup, Arc::clone(&self.handler)),
            ForkResult::Parent { child } => {
                self.next_serial += 1;
                self.workers.push(Worker {
                    pid: child,
                    born: Instant::now(),
                    serial: self.next_serial,
                    kill_at: None,
                    retiring: false,
                    killed: false,
                });
                log::info!("master: booted worker {child} ({} running)", self.workers.len());
                Ok(())
            }
        }
    }

    /// SIGKILLs every SIGTERM'd worker whose time is up.
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            if !w.killed && w.kill_at.is_some_and(|at| at <= now) {
                log::warn!("master: worker {} did not finish in time: SIGKILL", w.pid);
                let _ = kill(w.pid, Signal::SIGKILL);
                w.killed = true;
            }
        }
    }

    /// The earliest instant the loop must wake without a signal: a kill deadline, or the end of
    /// a respawn back-off while workers are missing.
    fn next_deadline(&self) -> Option<Instant> {
        let kills = self.workers.iter().filter(|w| !w.killed).filter_map(|w| w.kill_at);
        let missing =
            self.stop.is_none() && self.workers.iter().filter(|w| !w.retiring).count() < self.target;
        kills.chain(missing.then_some(self.respawn_at)).min()
    }
}

impl<H> Drop for Master<H> {
    /// The last line of defence on every exit path of the master, panics included: no worker
    /// outlives it, and the caller gets its signal mask back.
    fn drop(&mut self) {
        for w in &self.workers {
            log::warn!("master: killing worker {} on the way out", w.pid);
            let _ = kill(w.pid, Signal::SIGKILL);
        }
        for w in &self.workers {
            // SIGKILL cannot be caught, so this wait is short. EINTR: try again.
            while let Err(Errno::EINTR) = waitpid(w.pid, None) {}
        }
        self.workers.clear();
        // Drain what is pending, so that unblocking does not deliver a stale signal (a SIGINT
        // already acted on would otherwise kill the process with its default action).
        while let Ok(Some(_)) = self.signals.read_signal() {}
        let _ = self.saved_mask.thread_set_mask();
    }
}

/// SIGTERMs a worker (once) and sets when it will be SIGKILLed.
fn terminate(w: &mut Worker, deadline: Instant) {
    if w.killed {
        return;
    }
    if w.kill_at.is_none() {
        // ESRCH: it already exited and waits to be reaped; fine.
        let _ = kill(w.pid, Signal::SIGTERM);
    }
    w.kill_at = Some(w.kill_at.map_or(deadline, |at| at.min(deadline)));
}

/// The delay after one more start-up failure: `initial` the first time (`current` is zero), then
/// doubling, never above `max`.
fn next_backoff(current: Duration, initial: Duration, max: Duration) -> Duration {
    if current.is_zero() { initial } else { current.saturating_mul(2).min(max) }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!("killed by {sig}{}", if core { ", core dumped" } else { "" })
        }
        other => format!("{other:?}"),
    }
}

/// Everything a new worker needs, copied out of the master's state before the fork, so that
/// the child reads plain values and never the master's structures.
struct WorkerSetup {
    master: Pid,
    addr: SocketAddr,
    /// The shared listener's descriptor; `None` in `SO_REUSEPORT` mode.
    listener_fd: Option<RawFd>,
    /// Master descriptors the worker must close (-1: none).
    close_fds: [RawFd; 2],
    worker_mask: SigSet,
    threads: Option<usize>,
    builder: ServerBuilder,
    reuse_port: bool,
}

/// A worker's whole life. Never returns: it ends in `_exit`.
fn worker_main<H: RequestHandler>(setup: WorkerSetup, handler: Arc<H>) -> ! {
    // This thread's remembered pid and tid are the master's: ask the kernel again.
    crate::trace::forget_after_fork();
    // A panic must not unwind out of here into the copy of the master's loop.
    let outcome = catch_unwind(AssertUnwindSafe(|| worker(setup, handler)));
    let status = match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log::error!("worker {}: {e}", Who::current());
            1
        }
        Err(_) => 1,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once, without atexit handlers or destructors, which
    // belong to the master's copy of the program state. It has no preconditions.
    unsafe { libc::_exit(status) }
}

fn worker<H: RequestHandler>(setup: WorkerSetup, handler: Arc<H>) -> Result<()> {
    // 1. No orphans: the kernel sends us SIGTERM (a graceful stop) when the master dies. The
    //    master may have died between the fork and this call, so check once by hand.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    if getppid() != setup.master {
        log::warn!("worker {}: the master is gone before start-up; exiting", Who::current());
        return Ok(());
    }
    // 2. The master's signalfd (and its port reservation): not ours.
    for fd in setup.close_fds.into_iter().filter(|fd| *fd >= 0) {
        // SAFETY: these descriptors belong to the master's `SignalFd` and reserved `Socket`,
        // whose copies in this process are never used or dropped again (the worker ends in
        // _exit without returning into the master's code), so nothing closes or uses them twice.
        unsafe {
            libc::close(fd);
        }
    }
    // 3. Ctrl-C reaches the whole process group; the master alone decides how to stop.
    // SAFETY: SIG_IGN runs no handler code; the worker is still single-threaded here.
    unsafe { nix::sys::signal::signal(Signal::SIGINT, SigHandler::SigIgn) }?;
    // 4. Undo the master's blocking, except SIGTERM, which the `signals` thread below waits for.
    //    Threads inherit this mask, so every thread started later has SIGTERM blocked.
    setup.worker_mask.thread_set_mask()?;

    // SAFETY: the descriptor is the master's shared listener, inherited by the fork. The
    // master's `TcpListener` copy in this process is never used or dropped (we end in _exit),
    // so the worker's `Server` is its one owner and closes it in server_close.
    let listener = setup.listener_fd.map(|fd| unsafe { TcpListener::from_raw_fd(fd) });
    // 5. Build the worker's server and serve. The inner strategy is a match, not a type
    //    parameter of Prefork, so that adding one (a thread pool) is one more arm.
    match setup.threads {
        None => serve_worker(Sequential, setup.builder, setup.addr, setup.reuse_port, listener, handler),
        // A pool, as gunicorn's gthread worker: m threads, idle keep-alive connections parked
        // instead of pinning a thread. Accepting only when a thread is idle: a worker whose
        // threads are all busy leaves new connections in the shared backlog for a worker that
        // is free, rather than queueing them behind its own slow requests.
        Some(m) => serve_worker(
            Pool::new(m).accept_only_when_idle(true),
            setup.builder,
            setup.addr,
            setup.reuse_port,
            listener,
            handler,
        ),
    }
}

fn serve_worker<C: Concurrency, H: RequestHandler>(
    concurrency: C,
    builder: ServerBuilder,
    addr: SocketAddr,
    reuse_port: bool,
    listener: Option<TcpListener>,
    handler: Arc<H>,
) -> Result<()> {
    let mut server = match listener {
        Some(l) => builder.from_listener(l, concurrency, handler)?,
        // SO_REUSEPORT: a socket of our own on the master's port; the kernel now counts us in
        // when it spreads connections.
        None => builder.reuse_port(reuse_port).bind(addr, concurrency, handler)?,
    };
    let handle = server.shutdown_handle();
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut seen = 0;
        loop {
            let Ok(_) = term.wait() else { continue };
            seen += 1;
            if seen == 1 {
                log::info!("worker {}: SIGTERM: finishing requests in flight", Who::current());
                if let Err(e) = handle.request_shutdown() {
                    log::error!("worker: cannot request shutdown: {e}");
                }
            } else {
                let _ = std::io::stderr().flush();
                // SAFETY: as in worker_main: _exit skips the destructors and atexit handlers of
                // state copied from the master. Ending the process from this thread is the point.
                unsafe { libc::_exit(1) }
            }
        }
    })?;
    log::info!("worker {}: serving ({})", Who::current(), server.concurrency().name());
    server.serve_forever()?;
    server.server_close();
    log::info!("worker {}: stopped, requests finished", Who::current());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_failures_back_off_from_a_tenth_of_a_second_doubling_to_five() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..9 {
            d = next_backoff(d, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }

    #[test]
    fn configuration_is_clamped_to_sense() {
        let p = Prefork::new(0).threads(0).respawn_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(p.workers(), 1);
        assert_eq!(p.threads, Some(1));
        assert_eq!((p.backoff_initial, p.backoff_max), (Duration::from_secs(2), Duration::from_secs(2)));
    }
}
