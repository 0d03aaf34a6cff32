//! [`EventLoop`]: every connection on one reactor, and the service run on the reactor's own
//! thread. The design and its trade-off are on the type's docs.

use std::sync::Arc;
use std::time::Duration;

use super::pool::half_async::{HalfAsync, RunOn, Setup};
use super::pool::http::HttpMachines;
use super::{Concurrency, Dispatcher};
use crate::handler::{Connection, RequestHandler};
use crate::transport::{self, ListenOptions, Listener};

/// Room for offloaded jobs per offload worker (as the Pool's queue: a few per worker keep the
/// workers busy; more only hides an overload inside the process).
const QUEUE_PER_WORKER: usize = 4;

/// Every connection on one reactor, and the service run on the reactor's own thread —
/// asyncio, Node, an nginx worker.
///
/// ```text
///  accept thread         loop thread (one per EventLoop::threads)          offload workers
///  ─────────────         ─────────────────────────────────────────          (EventLoop::offload)
///  accept() ─────▶ the   epoll_wait ─▶ read what is there ─▶ a request?
///  loop with the         ├─ service → Reply::now      ─▶ write the answer
///  fewest connections    ├─ service → Reply::after    ─▶ a reactor timer ─▶ (later) write
///                        └─ service → Reply::offload  ─▶ queue ───────────▶ work() ─┐
///                        write the answer ◀──── channel + waker ◀──────────────────────┘
/// ```
///
/// It is the [`Pool`](crate::Pool)'s half-sync/half-async driver (`pool/half_async.rs`) with
/// one difference, where the service runs (`RunOn::Loop`): the same reactor, the same
/// sans-IO connection, the same back-pressure, deadlines and graceful stop.
///
/// # The trade-off
/// *What is shared:* one thread serves every client. A connection costs its socket, its
/// buffers and a slot in the reactor's slab — no thread, no stack — so ten thousand idle
/// keep-alive clients cost a few megabytes, and a thousand clients each waiting a second on a
/// timer ([`Reply::after`](crate::http::Reply::after)) are all answered after one second, by
/// one thread. *What it costs:* **never block the loop.** While the service runs, nobody else
/// is served: a service that sleeps (`/block`), computes (`/cpu`) or waits on a blocking call
/// stalls every client of its loop for that long. Wait on a loop timer instead, or hand the
/// work to [`offload`](EventLoop::offload) workers (asyncio's `run_in_executor`), and use
/// [`threads`](EventLoop::threads) to put more cores to work (one loop per core, nginx's
/// `worker_processes auto`).
///
/// *When to pick it:* many connections, most of them idle or waiting (chat, long polling,
/// proxies, slow clients), and services that are quick or can say "later". *When not:*
/// services that block or compute and cannot be rewritten to say so — every one of them is a
/// stall for everybody; a [`Pool`](crate::Pool) or [`Threading`](crate::Threading) tolerates
/// them.
///
/// # How connections reach the loops
/// One loop accepts from the server's listener itself, in its own epoll set: there is nobody to
/// balance between, and a connection handed over from the accept thread cost a thread wake-up each
/// (one loop served about 15 % more `Connection: close` requests accepting itself). With several
/// loops, by default the server's accept thread accepts, as for every other strategy, and hands
/// each connection to the loop with the fewest connections (a new connection is cheap to move
/// before it has a single byte read). With [`accept_on_loops`](EventLoop::accept_on_loops) every
/// loop instead has the server's listener in its own epoll set with `EPOLLEXCLUSIVE` and accepts
/// itself, one connection per wake-up (nginx's `multi_accept off`). That saves the hand-off (one
/// eventfd write per connection), but the kernel wakes a waiter only when a connection *arrives*: a
/// burst that arrives at once is then served by the loop that woke, while a sibling sleeps on a
/// listener that stays readable — measured: twenty `/block?s=1` on two loops took 13 to 20 s
/// accepting on the loops and 10 s handed off (docs/13-the-event-loop.md). With
/// [`reuse_port`](EventLoop::reuse_port) every loop accepts from a listener of its own, all bound
/// to the server's port with `SO_REUSEPORT`: the kernel spreads new connections by a hash of the
/// client's address, so no two loops ever wait on one socket — but the hash is blind to how busy a
/// loop is (a stalled loop's share waits in its own queue), and the connections queued on a loop's
/// socket when it closes are reset. The hand-off keeps the server's one listener, its close and its
/// back-pressure as on every strategy, and balances by load, hence the default. (On `/hello` with
/// keep-alive the three are level on 2 cores; with `Connection: close` the hand-off costs about
/// 15 %: docs/benchmarks.md has the figures.)
///
/// # Handlers
/// Only a sans-IO handler (the HTTP layer's [`HttpHandler`](crate::http::HttpHandler)) runs
/// on the loop: a byte-stream handler reads and writes its socket itself, blocking, and would
/// stall the loop for its whole connection. Such a connection is refused (closed at once, and
/// logged once per server): use [`Threading`](crate::Threading) or [`Pool`](crate::Pool) for
/// it.
///
/// # Configure this
/// * [`EventLoop::threads`]: the number of loops (default 1).
/// * [`EventLoop::offload`]: offload workers per loop (default 0: offloaded work runs on the
///   loop, blocking it).
/// * [`EventLoop::accept_on_loops`], [`EventLoop::reuse_port`]: how connections reach
///   several loops (default: handed off by the accept thread; one loop accepts itself).
/// * [`EventLoop::queue_size`]: room for offloaded jobs waiting for a worker, per loop
///   (default offload × 4); when full, the loop stops reading, as the Pool does.
/// * [`EventLoop::block_on_close`]: whether `server_close` waits for the requests in progress,
///   those on a timer or an offload worker included (default `true`).
///
/// The loops start with the first connection, or when `serve_forever` begins if they accept
/// themselves (one loop, `accept_on_loops`, `reuse_port`): an `EventLoop` value by itself is
/// just configuration.
///
/// # Faults
/// A panicking service (or later closure) gives a 500, and the loop goes on. A graceful stop
/// closes idle connections and answers every request already read, including those waiting on
/// a timer or an offload worker, then ends the loops.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use socketserver::http::{HttpHandler, Reply, Request, Response};
/// use socketserver::{EventLoop, Server};
///
/// let app = HttpHandler::new(|req: &Request| match req.path() {
///     // A timer of the loop: a thousand of these wait at once, on one thread.
///     "/delay" => Reply::after(Duration::from_secs(1), || Response::text(200, "done\n")),
///     _ => Reply::now(Response::text(200, "hello\n")),
/// });
/// let mut server = Server::bind("127.0.0.1:8000", EventLoop::new().threads(2).offload(4), app)?;
/// server.serve_forever()?;
/// server.server_close(); // answers what is in progress, timers included
/// # Ok::<(), socketserver::Error>(())
/// ```
#[derive(Debug)]
pub struct EventLoop {
    threads: usize,
    offload: usize,
    queue_size: Option<usize>,
    block_on_close: bool,
    loops: Vec<HalfAsync>,
    /// Where the last tie of "fewest connections" went, so that ties go round.
    next: usize,
    /// The loops accept from the listener themselves instead of the accept thread handing over.
    accept_on_loops: bool,
    /// ... each from a `SO_REUSEPORT` listener of its own (implies `accept_on_loops`).
    reuse_port: bool,
    /// The loops were started with a duplicate of the listener each.
    own_listeners: bool,
    /// A byte-stream handler was refused already (it is logged once).
    refused: bool,
    closed: bool,
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop::new()
    }
}

impl EventLoop {
    /// One loop, no offload workers, `block_on_close`.
    pub fn new() -> EventLoop {
        EventLoop {
            threads: 1,
            offload: 0,
            queue_size: None,
            block_on_close: true,
            loops: Vec::new(),
            next: 0,
            accept_on_loops: false,
            reuse_port: false,
            own_listeners: false,
            refused: false,
            closed: false,
        }
    }

    /// Runs `n` loops (at least 1), each a thread with its own reactor; a connection stays on
    /// the loop it was given. One per core puts every core to work.
    pub fn threads(mut self, n: usize) -> EventLoop {
        self.threads = n.max(1);
        self
    }

    /// `n` offload workers per loop, for [`Reply::offload`](crate::http::Reply::offload)
    /// (asyncio's `run_in_executor`). With 0 (the default) offloaded work runs on the loop
    /// itself and blocks it while it runs.
    pub fn offload(mut self, n: usize) -> EventLoop {
        self.offload = n;
        self
    }

    /// Room for offloaded jobs waiting for a worker, per loop (default 4 per offload worker;
    /// at least 1).
    pub fn queue_size(mut self, n: usize) -> EventLoop {
        self.queue_size = Some(n.max(1));
        self
    }

    /// `true`: every loop accepts from the server's listener itself, registered in its own
    /// epoll set with `EPOLLEXCLUSIVE`. Default `false`: with several loops, the server's
    /// accept thread accepts and hands each connection to the loop with the fewest (see "How
    /// connections reach the loops" for why); a single loop accepts itself either way. A
    /// server driven by `handle_request` always hands off.
    pub fn accept_on_loops(mut self, on: bool) -> EventLoop {
        self.accept_on_loops = on;
        self
    }

    /// `true`: every loop accepts from a listening socket of its own, bound to the server's
    /// address with `SO_REUSEPORT` (nginx's `listen ... reuseport`), and the kernel spreads
    /// new connections across them by a hash of the client's address and port. Implies
    /// [`accept_on_loops`](EventLoop::accept_on_loops). Default `false`.
    ///
    /// The first loop keeps the server's own listener; `SO_REUSEPORT` is set on it too (Linux
    /// lets a listening socket join the group late: the group forms when the second socket
    /// binds), and each further loop binds a new socket with the default backlog (`SOMAXCONN`).
    /// Two consequences to accept with it: any process of the same user may then bind the port
    /// as well and receive a share of its connections (as with every `SO_REUSEPORT` server),
    /// and the connections waiting in a loop's queue when the server closes are reset rather
    /// than left to a sibling. A loop whose socket cannot be bound falls back to the shared
    /// listener (logged). A server driven by `handle_request` always hands off.
    pub fn reuse_port(mut self, on: bool) -> EventLoop {
        self.reuse_port = on;
        self
    }

    /// Whether `server_close` waits for the requests in progress (Python's `block_on_close`,
    /// default `true`).
    pub fn block_on_close(mut self, on: bool) -> EventLoop {
        self.block_on_close = on;
        self
    }

    /// The number of loops configured.
    pub fn loops(&self) -> usize {
        self.threads
    }

    /// Connections on the loops now (0 before the first connection).
    pub fn connections(&self) -> usize {
        self.loops.iter().map(|l| l.stats().connections).sum()
    }

    fn capacity(&self) -> usize {
        self.queue_size.unwrap_or((self.offload * QUEUE_PER_WORKER).max(1))
    }

    /// Starts the loops for `handler`, each with a duplicate of `listener` if given (or, with
    /// `reuse_port`, the first with a duplicate and each other with a socket of its own on the
    /// same address); `false` if none could start.
    fn start<H: RequestHandler>(&mut self, dispatcher: &Dispatcher<H>, listener: Option<&Listener>) -> bool {
        let Some(machines) = HttpMachines::new(Arc::clone(dispatcher.handler()), dispatcher.server_id())
        else {
            return false;
        };
        let machines = Arc::new(machines);
        self.own_listeners = listener.is_some();
        // Every socket of a SO_REUSEPORT group must have the option, the server's own listener
        // included: without it the siblings' bind fails with EADDRINUSE.
        let reuse_addr = match listener {
            Some(l) if self.reuse_port && self.threads > 1 => {
                // TCP only: a Unix socket's loops share it (its file has one name).
                let inet = l.local_addr().ok().and_then(|a| a.as_inet());
                match inet.map(|a| socket2::SockRef::from(l).set_reuse_port(true).map(|()| a)) {
                    None => None,
                    Some(Ok(addr)) => Some(addr),
                    Some(Err(e)) => {
                        log::error!("event loop: cannot set SO_REUSEPORT on the listener: {e}; sharing it");
                        None
                    }
                }
            }
            _ => None,
        };
        for i in 0..self.threads {
            // A socket of its own on the same port (SO_REUSEPORT): the kernel gives this loop
            // its share of new connections in a queue only it accepts from.
            let own_socket = match reuse_addr {
                Some(addr) if i > 0 => {
                    match transport::bind_tcp(
                        addr,
                        ListenOptions { reuse_port: true, ..ListenOptions::default() },
                    ) {
                        Ok(l) => Some(l),
                        Err(e) => {
                            log::error!("event loop {}: {e}; it shares the server's listener", i + 1);
                            None
                        }
                    }
                }
                _ => None,
            };
            // Else a duplicate descriptor of the one socket: every loop's epoll set holds it, and
            // the kernel's queue of connections is shared.
            let own = match own_socket.map(Ok).or_else(|| listener.map(Listener::try_clone)) {
                None => None,
                Some(Ok(l)) => Some(l),
                Some(Err(e)) => {
                    // Out of descriptors: this loop gets connections handed over instead.
                    log::error!("event loop {}: cannot duplicate the listener: {e}", i + 1);
                    self.own_listeners = false;
                    None
                }
            };
            let setup = Setup {
                run_on: RunOn::Loop,
                workers: self.offload,
                capacity: self.capacity(),
                stack_size: None,
                accept_only_when_idle: false,
                reactor_name: format!("event-loop-{}", i + 1),
                worker_prefix: format!("offload-{}-", i + 1),
                listener: own,
                // The loop runs the service itself: there is no worker queue to be full of
                // requests (only offloaded jobs), so nothing to shed.
                shed: None,
                lead: false,
            };
            match HalfAsync::start(Arc::clone(&machines), setup) {
                Ok(l) => self.loops.push(l),
                // Fewer loops than asked still serve; none does not (the next connection
                // tries again).
                Err(e) => {
                    log::error!("cannot start event loop {}: {e}", i + 1);
                    break;
                }
            }
        }
        !self.loops.is_empty()
    }

    /// The loop with the fewest connections among those with room (ties go round).
    fn pick(&mut self) -> Option<&HalfAsync> {
        let n = self.loops.len();
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        let best = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| (!self.loops[i].has_room(), self.loops[i].stats().connections))
            .unwrap_or(start);
        self.next = best + 1;
        self.loops.get(best)
    }
}

impl Concurrency for EventLoop {
    fn name(&self) -> &'static str {
        "event-loop"
    }

    fn process_request<H: RequestHandler>(&mut self, conn: Connection, dispatcher: &Dispatcher<H>) {
        if self.closed {
            return;
        }
        if dispatcher.handler().sans_io().is_none() {
            // A byte-stream handler would block the loop for its whole connection: refused
            // (dropping the connection closes it), and said once, loudly.
            if !self.refused {
                self.refused = true;
                log::error!(
                    "EventLoop serves only sans-IO handlers (http::HttpHandler); this handler reads its \
                     socket itself and would block the loop: closing its connections (use Threading or Pool)"
                );
            }
            return;
        }
        if self.loops.is_empty() && !self.start(dispatcher, None) {
            return;
        }
        // As in the pool: a datagram never has a sans-IO handler, so never gets here.
        if let (Some(l), Some((stream, peer))) = (self.pick(), conn.into_parts()) {
            l.submit(stream, peer);
        }
    }

    fn serves_datagrams(&self) -> bool {
        false
    }

    fn accept_on_own_threads<H: RequestHandler>(
        &mut self,
        listener: &Listener,
        dispatcher: &Dispatcher<H>,
    ) -> bool {
        // One loop has nobody to balance with: it accepts itself (no hand-off per connection).
        if !(self.accept_on_loops || self.reuse_port || self.threads == 1)
            || self.closed
            || dispatcher.handler().sans_io().is_none()
        {
            return false;
        }
        if self.loops.is_empty() && !self.start(dispatcher, Some(listener)) {
            return false;
        }
        if !self.own_listeners {
            // Started by handle_request (or a listener could not be duplicated): hand off.
            return false;
        }
        for l in &self.loops {
            l.set_accepting(true);
        }
        true
    }

    fn stop_accepting(&mut self) {
        for l in &self.loops {
            l.set_accepting(false);
        }
    }

    fn has_capacity(&self) -> bool {
        // Not started yet: the first connection starts them, all with room.
        self.loops.is_empty() || self.loops.iter().any(HalfAsync::has_room)
    }

    fn wait_for_capacity(&mut self, timeout: Duration) {
        // Every loop is full (else the server would not ask): room on the first is enough.
        if let Some(l) = self.loops.first() {
            l.wait_for_room(timeout);
        }
    }

    fn server_close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        // Every loop is told first, so they stop together; then each is waited for.
        for l in &self.loops {
            l.stop();
        }
        for l in &mut self.loops {
            l.close(self.block_on_close);
        }
    }
}

impl Drop for EventLoop {
    /// Stops the loops of an event loop dropped without `server_close`.
    fn drop(&mut self) {
        self.server_close();
    }
}
