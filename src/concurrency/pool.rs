//! [`Pool`]: a fixed set of worker threads — the Rust Book's thread pool, gunicorn's `gthread`
//! worker, Tomcat NIO. The design and its trade-off are on the type's docs; the reactor driver
//! for HTTP is `pool/half_async.rs`, its HTTP glue `pool/http.rs`, and the worker path for
//! byte-stream handlers (with parking) is this file.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Concurrency, Dispatcher};
use crate::handler::{Connection, RequestHandler};
use crate::reactor::{Event, Interest, Reactor, Waker};
use crate::transport::Listener;

// The reactor driver (HTTP connections, through `HttpConn`'s `ConnMachine`) and its HTTP glue.
pub(crate) mod half_async;
pub(crate) mod http;
use half_async::{HalfAsync, Machines, RunOn, Setup};
use http::HttpMachines;

/// The default queue has room for this many connections per worker.
///
/// Why 4: the queue exists to keep workers busy, not to hold the overload. A worker that
/// finishes a job should find the next one at once, without waiting for the accept thread to
/// wake up; and a burst accepted in one batch should reach the pool without the accept thread
/// stopping for every connection. A few per worker does that. A bigger queue only moves the
/// waiting from the kernel's backlog (where the overload is visible to the client, to load
/// balancers and to `ss -lt`, and costs the server nothing) into the process (where each waiting
/// connection holds a file descriptor and looks accepted); and a connection at the back of the
/// queue already waits about four service times before it starts.
pub(crate) const DEFAULT_QUEUE_PER_THREAD: usize = 4;

/// How often a full queue's waiter looks at the workers: if they all died, nobody would ever
/// make room, so the accept thread checks and replaces them while it waits.
const FULL_QUEUE_CHECK: Duration = Duration::from_millis(100);

/// A fixed set of worker threads (the Rust Book's pool, gunicorn's `gthread`): N workers are
/// started once and reused, however many clients come.
///
/// # Call this
/// `Server::bind(addr, Pool::new(4), handler)`; [`busy`](Pool::busy), [`queued`](Pool::queued),
/// [`parked`](Pool::parked) and [`workers_replaced`](Pool::workers_replaced) through
/// [`Server::concurrency`](crate::Server::concurrency).
///
/// # Configure this (consuming setters)
/// * [`Pool::new`]`(threads)`: the number of workers (at least 1).
/// * [`Pool::queue_size`]: room for work waiting for a worker (default threads × 4): complete
///   requests on the reactor path, accepted connections on the worker path.
/// * [`Pool::half_async`]: whether an HTTP handler's connections live on the reactor (default
///   `true`, see below).
/// * [`Pool::leader_followers`]: whether the workers take turns at the reactor (default `true`)
///   or a reactor thread hands each request to a worker (see *Leader/followers* below).
/// * [`Pool::shed_when_full`]: answer `503` + `Retry-After` when the queue is full, instead of
///   waiting (default: wait; see *Back-pressure or load shedding* below).
/// * [`Pool::stack_size`]: worker stack size (default Rust's, 2 MiB).
/// * [`Pool::block_on_close`]: whether `server_close` waits for queued and running requests
///   (Python's `block_on_close`, default `true`).
///
/// Threads start with the first connection (or the first `service_actions`; for an HTTP handler
/// on the reactor path, when `serve_forever` begins, since the reactor accepts): a `Pool` value
/// by itself is just configuration.
///
/// # The trade-off
/// *What is shared:* everything threads share (one address space, one handler, one set of
/// open files), and the threads themselves: a request pays no thread start-up, and the number
/// of threads — stacks, kernel tasks, context switches — stays N. *What it costs:* capacity is
/// fixed. A pool completes at most **workers ÷ service time** requests per second: 4 workers
/// and 1 s requests make 4 a second, so ten such requests take three waves, about 3 s, where
/// [`Threading`](crate::Threading) takes 1 s. Beyond that rate requests wait, in the queue and
/// then in the kernel's listen backlog, and latency grows while throughput stays put: an
/// overloaded pool degrades by queueing, not by starting threads until memory runs out. More
/// workers help only while the work waits (sleeps, I/O); for CPU-bound work, more workers than
/// cores only share the same cores more finely.
///
/// *When to pick it:* a known, steady load and short or I/O-bound handlers; bounded memory; a
/// public port (no slow client can pin a worker, below). Size it to what the *backend* can take
/// (database connections, cores), not to the number of clients.
///
/// # A worker only ever runs a complete request
/// A pool's workers are few, so a worker that waits on a client is a worker lost to everyone:
/// four clients that send their request a byte at a time (slowloris) or read the response a byte
/// at a time would stop a four-worker pool for as long as their timeouts allow. So for an
/// HTTP handler (one whose connection is a state machine with no I/O in it, `http::conn`), every
/// connection lives, non-blocking, in the pool's one *reactor* (one `epoll`, `src/reactor.rs`),
/// which accepts, reads and writes without ever blocking; a thread runs the service only on a
/// request that is whole, and writes what the client takes at once, leaving the rest to the
/// reactor. Deadlines (header, body rate, send rate, idle) are reactor timers. Pipelined
/// requests are answered in order, one out per connection at a time; those that arrived
/// together are answered by the same thread and leave in one write. When every worker is busy
/// and the queue is full, the reactor stops reading and stops accepting: back-pressure, with
/// memory bounded by the queue and the HTTP layer's limits.
///
/// # Leader/followers (the default), or a reactor thread that hands off
/// Which thread runs the reactor is the other choice, [`leader_followers`](Pool::leader_followers):
///
/// ```text
///  leader/followers (default): the workers take turns at the reactor
///  leader:    epoll_wait ─▶ accept, read, write ─▶ complete requests ─▶ queue
///             gives up the role, then runs the requests it read itself (no wake-up)
///  sentry:    an idle worker watching the leader; if the role stays free for a tick
///             (1 ms: the former leader runs a long request), it takes the role
///  followers: sleep until a request has waited in the queue for a tick
///
///  half-sync/half-async (leader_followers(false)): a reactor thread of its own
///  reactor thread: epoll_wait ─▶ accept, read, write ─▶ complete requests ─▶ queue
///  workers (N):    queue ─▶ service ─▶ write what fits ─▶ back to the reactor
/// ```
///
/// Leader/followers (Schmidt's pattern; the shape of a shared-`epoll` server written by hand)
/// runs a request on the thread that read it, so a keep-alive client costs no switch between
/// threads; a request that runs long costs the reactor a tick at most, since the sentry takes
/// it over, and while every worker is busy nobody reads, which is back-pressure anyway. The
/// hand-off keeps one thread at the reactor at all times, at the price of a wake-up of a worker
/// per request (docs/benchmarks.md, "The pool's reactor hand-off", has both measured). It is
/// used whatever the setting where the reactor must answer while every worker is busy
/// ([`shed_when_full`](Pool::shed_when_full)), and where the connections come from elsewhere: a
/// server driven by `handle_request`, and `Prefork`'s workers, hand them over from the accept
/// thread. [`half_async(false)`](Pool::half_async) gives up the reactor altogether, for the
/// comparison.
///
/// # Back-pressure or load shedding
/// When every worker is busy and the queue is full, a pool can make the next client *wait*
/// (the default: the reactor stops reading, the server stops accepting, new clients wait in the
/// kernel's backlog and are served late, or time out on their own clock) or *refuse* it at once
/// ([`shed_when_full`](Pool::shed_when_full): the reactor answers each complete request with
/// `503 Service Unavailable`, `Retry-After` and `Connection: close`, keeps reading and keeps
/// accepting). Waiting suits clients that would only retry anyway (a batch job); refusing suits
/// a load balancer or a client that can go elsewhere, and keeps latency bounded for those that
/// are served: nobody waits behind more than the queue. [`requests_shed`](Pool::requests_shed)
/// counts the refusals.
///
/// # The worker path, and parking
/// A handler without that state machine (a byte-stream handler: the echo handler of the crate
/// docs), or any handler with `half_async(false)`, runs on the workers as on every other
/// strategy, with one addition for keep-alive: a handler that has answered and finds the
/// connection idle calls [`Connection::park`] and returns (the HTTP handler does so by itself);
/// the worker hands the open connection to a *poller* thread, which watches every parked socket
/// in one reactor with its idle deadline as a timer, and puts it back in the queue when it is
/// readable. So idle keep-alive clients cost a file descriptor, not a thread. While other
/// connections wait in the queue, a handler parks after *every* answer and the worker puts the
/// connection at the back of the queue, so that busy clients take turns instead of one keeping a
/// worker for as long as it sends (`tests/pool.rs`). What this path does not protect: a client
/// that is slow *within* a request holds its worker until the HTTP layer's timeouts cut it.
///
/// # Faults
/// A panicking service or handler costs its request (a 500 where one can still be sent), not the
/// worker. On the worker path, should a worker thread end anyway (a bug in this crate),
/// `service_actions` notices and starts a replacement, counted by [`Pool::workers_replaced`]; a
/// dead poller is restarted the same way. On the reactor path every job and every reactor pass
/// runs under `catch_unwind`, so a worker does not end; a panic in a pass (a bug of the
/// reactor's) closes the reactor's connections and lets its workers end, logged.
///
/// ```no_run
/// use socketserver::http::{HttpHandler, Request, Response};
/// use socketserver::{Pool, PoolTcpServer, Server};
///
/// let hello = HttpHandler::new(|_: &Request| Response::text(200, "hello\n"));
/// let mut server: PoolTcpServer<_> = Server::bind("127.0.0.1:8000", Pool::new(4).queue_size(16), hello)?;
/// server.serve_forever()?;
/// server.server_close(); // runs what is queued, closes parked connections, joins the workers
/// # Ok::<(), socketserver::Error>(())
/// ```
#[derive(Debug)]
pub struct Pool {
    threads: usize,
    queue_size: Option<usize>,
    stack_size: Option<usize>,
    block_on_close: bool,
    accept_only_when_idle: bool,
    /// See [`Pool::half_async`].
    half_async_http: bool,
    /// See [`Pool::shed_when_full`]: `Some(retry_after)` sheds.
    shed_when_full: Option<Duration>,
    /// See [`Pool::leader_followers`].
    leader_followers: bool,
    /// `None` until the pool starts (and if it could not: see `start`).
    shared: Option<Arc<Shared>>,
    workers: Vec<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
    /// Worker threads started, for their names.
    spawned: u64,
    replaced: u64,
    closed: bool,
    /// The type-erased dispatcher, made on the first connection: a pool belongs to one server, so
    /// every connection runs the same dispatcher and shares this one allocation.
    runner: Option<KeptRunner>,
    /// The half-sync/half-async machinery, for a handler that is a sans-IO protocol (see
    /// `half_async`); started on its first connection, and then the only path of this pool.
    half_async: Option<HalfAsync>,
}

/// A connection and the job that serves it, type-erased: workers are not generic over the
/// handler (they are started before the pool knows it, and one pool could in principle serve
/// jobs of several types).
struct Task {
    conn: Connection,
    run: Runner,
    /// Queued by accept (`true`) rather than re-queued by the poller: only these count against
    /// `queue_size` (see `State::fresh`).
    fresh: bool,
    /// Re-queued by a worker without looking whether its next request has arrived (see
    /// `worker_loop`), with the idle timeout to park it with if it has not: the worker that
    /// takes it looks first.
    unchecked: Option<Duration>,
}

/// The reactor watches a parked task's socket.
impl AsFd for Task {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.fd()
    }
}

type Runner = Arc<dyn Fn(Connection) -> Option<(Connection, Duration)> + Send + Sync>;

/// A [`Runner`] the pool keeps (closures have no `Debug`, the pool does).
struct KeptRunner(Runner);

impl std::fmt::Debug for KeptRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptRunner")
    }
}

/// A connection waiting, without a thread, for its next request.
struct Parked {
    task: Task,
    deadline: Instant,
}

/// What the accept thread, the workers and the poller share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a task is queued or the pool is closing (workers wait on it).
    work: Condvar,
    /// Signalled when a worker takes a task (a full queue's waiter waits on it).
    room: Condvar,
    /// Parked connections, counting those not yet seen by the poller.
    parked: AtomicUsize,
    /// `state.queue.len()`, readable without the lock: connections see it through
    /// [`Connection::others_waiting`] after every response. Written under the lock.
    queued: Arc<AtomicUsize>,
    /// Wakes the poller from its reactor's wait (a worker parked a connection, or close).
    waker: Arc<Waker>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Task>,
    /// How many queued tasks came from accept. The bound applies to these alone: if re-queued
    /// keep-alive connections counted too, 32 busy kept-alive clients on 4 workers would keep the
    /// queue over its size and a new client would wait at accept for seconds (measured: 4.2 s),
    /// starved by connections that are merely taking turns.
    fresh: usize,
    /// Connections parked by workers since the poller last looked (its inbox).
    inbox: Vec<Parked>,
    busy: usize,
    /// Workers waiting on `work`, and threads waiting on `room`: a notification with nobody
    /// waiting still costs a `futex` system call, and with a connection per request these were
    /// two of the four per connection. So notify only when someone waits. (Both counts change
    /// under the lock, as do the queue and `busy`, so a waiter cannot be missed: it counts
    /// itself before it looks at the queue, and whoever changes the queue looks at the count.)
    idle_workers: usize,
    room_waiters: usize,
    closing: bool,
    /// The poller has ended (it closes what it holds when it does): nobody watches parked
    /// connections any more, so workers close instead of parking.
    poller_done: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Shared")
            .field("queued", &st.queue.len())
            .field("busy", &st.busy)
            .field("parked", &self.parked.load(Ordering::SeqCst))
            .field("closing", &st.closing)
            .finish()
    }
}

impl Shared {
    fn new() -> io::Result<Shared> {
        Ok(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            parked: AtomicUsize::new(0),
            queued: Arc::new(AtomicUsize::new(0)),
            waker: Arc::new(Waker::new()?),
        })
    }

    /// The state, even if a thread panicked while holding the lock: every update below leaves
    /// the state consistent at each step, so a poisoned lock holds nothing half-done.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the queue's length after a change (call with the lock held, so that the
    /// stores happen in the order of the changes).
    fn count_queue(&self, st: &State) {
        self.queued.store(st.queue.len(), Ordering::Relaxed);
    }

    /// Puts `task` at the back of the queue, lets go of the lock, and wakes a worker if one is
    /// waiting.
    fn enqueue(&self, mut st: MutexGuard<'_, State>, task: Task) {
        st.queue.push_back(task);
        self.count_queue(&st);
        let idle = st.idle_workers > 0;
        drop(st);
        if idle {
            self.work.notify_one();
        }
    }

    /// Wakes the poller.
    fn wake(&self) {
        self.waker.wake();
    }

    /// A worker hands back a connection its handler parked.
    fn park(&self, task: Task, idle: Duration) {
        let mut st = self.lock();
        if st.closing || st.poller_done {
            // Nobody will watch it (closing: the poller's final sweep may be over already), and
            // the handler said it is idle: close it, as an idle timeout would.
            drop(st);
            task.conn.close();
            return;
        }
        let now = Instant::now();
        // A configured Duration::MAX means "never": cap it rather than overflow Instant.
        let deadline = now.checked_add(idle).unwrap_or(now + Duration::from_secs(86_400));
        st.inbox.push(Parked { task, deadline });
        self.parked.fetch_add(1, Ordering::SeqCst);
        drop(st);
        self.wake();
    }

    /// The poller puts connections that became readable back into the queue.
    fn requeue(&self, tasks: Vec<Task>) {
        if tasks.is_empty() {
            return;
        }
        let n = tasks.len();
        let mut st = self.lock();
        // Not bounded by queue_size: the bound is back-pressure on *accept*, and these
        // connections were accepted long ago; the poller must never block (it alone enforces
        // idle timeouts). Nor do they count against it (`fresh`): new clients and returning
        // ones take turns in one FIFO queue.
        st.queue.extend(tasks);
        self.count_queue(&st);
        self.parked.fetch_sub(n, Ordering::SeqCst);
        let idle = st.idle_workers;
        drop(st);
        if idle == 0 {
            // Every worker is busy: each looks at the queue before it waits again.
        } else if n == 1 {
            self.work.notify_one();
        } else {
            self.work.notify_all();
        }
    }
}

/// Counts a worker as busy while it runs a task, and stops counting however the task ends.
struct Busy<'a>(&'a Shared);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.busy -= 1;
        let waiting = st.room_waiters > 0;
        drop(st);
        // A worker is free: an accept loop waiting in wait_for_capacity may go on.
        if waiting {
            self.0.room.notify_all();
        }
    }
}

/// Marks the poller as gone when its thread ends, however it ends, and wakes the workers (at
/// close they wait for this before they exit: the poller's final sweep may queue work).
struct PollerDone<'a>(&'a Shared);

impl Drop for PollerDone<'_> {
    fn drop(&mut self) {
        self.0.lock().poller_done = true;
        self.0.work.notify_all();
    }
}

impl Pool {
    /// A pool of `threads` workers (raised to 1 if 0), with the default queue size (threads × 4),
    /// stack size and `block_on_close = true`. Nothing starts until the server runs.
    pub fn new(threads: usize) -> Pool {
        Pool {
            threads: threads.max(1),
            queue_size: None,
            stack_size: None,
            block_on_close: true,
            accept_only_when_idle: false,
            half_async_http: true,
            shed_when_full: None,
            leader_followers: true,
            shared: None,
            workers: Vec::new(),
            poller: None,
            spawned: 0,
            replaced: 0,
            closed: false,
            runner: None,
            half_async: None,
        }
    }

    /// Room for work waiting for a worker (default threads × 4; raised to 1 if 0): complete
    /// requests on the reactor path, accepted connections on the worker path. When it is full,
    /// the server accepts no more and new clients wait in the kernel's listen backlog (and the
    /// reactor stops reading), unless [`shed_when_full`](Pool::shed_when_full) refuses them. Why 4 per worker: enough that a worker finds its next job at
    /// once; more would only move the waiting from the backlog, where it costs the server
    /// nothing and the overload is visible (`ss -lt`), into the process.
    pub fn queue_size(mut self, n: usize) -> Pool {
        self.queue_size = Some(n.max(1));
        self
    }

    /// The stack size of worker threads, in bytes (default: Rust's, 2 MiB).
    pub fn stack_size(mut self, bytes: usize) -> Pool {
        self.stack_size = Some(bytes);
        self
    }

    /// Whether an HTTP handler's connections live on the pool's reactor, so that a worker is
    /// lent only to run the service on a complete request (the reactor path; default `true`).
    /// With `false`, workers read and write connections themselves, as every other strategy
    /// does: somewhat faster for busy keep-alive clients (no reactor between a worker and its
    /// socket), but a slow client holds a worker for as long as its timeouts allow
    /// (docs/14-slow-clients.md measures both). Handlers without a sans-IO side (byte-stream
    /// handlers) always run on the workers.
    pub fn half_async(mut self, on: bool) -> Pool {
        self.half_async_http = on;
        self
    }

    /// Whether the workers take turns at the reactor (*leader/followers*, default `true`) or a
    /// reactor thread of its own hands each complete request to a worker (*half-sync/half-async*,
    /// `false`). Both keep every connection non-blocking and lend a thread only to a complete
    /// request; they differ in which thread runs it. Leader/followers runs it on the thread that
    /// read it, so a request costs no wake-up of another thread, and a request that runs long
    /// has the reactor taken over by an idle worker within a millisecond or two (see *Leader/
    /// followers* above). The hand-off keeps one thread reading at all times, even while every
    /// worker is busy, at the price of two threads per request.
    ///
    /// Leader/followers needs a reactor that accepts for itself and nothing that must answer
    /// while every worker is busy, so the hand-off is used anyway with
    /// [`shed_when_full`](Pool::shed_when_full) (the reactor answers 503s while the workers are
    /// full), for `Prefork`'s workers, and for a server driven by `handle_request`.
    pub fn leader_followers(mut self, on: bool) -> Pool {
        self.leader_followers = on;
        self
    }

    /// When every worker is busy and the queue is full, answer a complete request at once with
    /// `503 Service Unavailable`, `Retry-After: <retry_after, in whole seconds rounded up>` and
    /// `Connection: close`, instead of waiting (load shedding; default: off, wait). The reactor
    /// writes the refusal itself, so it costs no worker, and the server goes on accepting so
    /// that new clients hear it rather than wait in the backlog. A request still arriving is
    /// read on: it is refused only if the queue is still full when it is complete.
    ///
    /// Why a Retry-After: a client (or a load balancer, or a crawler) told when to come back
    /// spreads its retries instead of hammering the server the moment it is refused. Why
    /// `Connection: close`: a refused client should not hold a connection while it waits.
    ///
    /// It applies on the reactor path (an HTTP handler with [`half_async`](Pool::half_async)
    /// on, the default), where the pool sees whole requests. On the worker path (byte-stream
    /// handlers, or `half_async(false)`) the pool sees only connections, with nobody to answer
    /// for it, and a full queue waits as before.
    pub fn shed_when_full(mut self, retry_after: Duration) -> Pool {
        self.shed_when_full = Some(retry_after);
        self
    }

    /// Accept a connection only when a worker is idle (default `false`: accept into the queue
    /// up to [`queue_size`](Pool::queue_size)). For pre-forked workers sharing one listener: a
    /// process whose threads are all busy leaves new connections in the backlog for a sibling
    /// that has a free thread, instead of holding them in its own queue. Measured with 2
    /// workers × 512 threads and 1000 simultaneous one-second requests: without it, one worker
    /// sometimes took 514 and two requests waited a second for a thread (2.0 s instead of 1.0 s).
    pub(crate) fn accept_only_when_idle(mut self, on: bool) -> Pool {
        self.accept_only_when_idle = on;
        self
    }

    /// Whether `server_close` waits for queued and running requests and joins the workers
    /// (Python's `block_on_close`, default `true`). With `false` it only tells them to finish.
    pub fn block_on_close(mut self, block: bool) -> Pool {
        self.block_on_close = block;
        self
    }

    /// The configured number of workers.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.queue_size.unwrap_or(self.threads * DEFAULT_QUEUE_PER_THREAD)
    }

    /// Worker threads alive right now: 0 before the pool starts and after it closes,
    /// [`threads`](Pool::threads) in between (unless one just died and is not yet replaced).
    pub fn workers(&self) -> usize {
        if let Some(h) = &self.half_async {
            return h.workers();
        }
        self.workers.iter().filter(|w| !w.is_finished()).count()
    }

    /// Workers running a request right now.
    pub fn busy(&self) -> usize {
        if let Some(h) = &self.half_async {
            return h.stats().busy;
        }
        self.shared.as_ref().map_or(0, |s| s.lock().busy)
    }

    /// Connections in the queue, waiting for a worker (new ones and readable parked ones; for
    /// a sans-IO protocol, complete requests).
    pub fn queued(&self) -> usize {
        if let Some(h) = &self.half_async {
            return h.stats().queued;
        }
        self.shared.as_ref().map_or(0, |s| s.lock().queue.len())
    }

    /// Connections holding no thread: idle keep-alive connections parked with the poller (for a
    /// sans-IO protocol: every connection on the reactor with no request out).
    pub fn parked(&self) -> usize {
        if let Some(h) = &self.half_async {
            let st = h.stats();
            return st.connections - st.in_service.min(st.connections);
        }
        self.shared.as_ref().map_or(0, |s| s.parked.load(Ordering::SeqCst))
    }

    /// Half-sync/half-async: hands `conn` to the pool's reactor thread, which reads its
    /// requests, runs each complete one on a worker (`machines.call`), and writes the answers,
    /// all without a thread waiting on the client. `machines` is asked for on the first
    /// connection only. Back-pressure is [`Concurrency::has_capacity`] (`false` while the
    /// request queue is full), so this never blocks.
    ///
    /// `process_request` calls it for a handler whose `sans_io()` is `Some`.
    pub(crate) fn process_machine<M: Machines>(
        &mut self,
        conn: Connection,
        machines: impl FnOnce() -> Option<Arc<M>>,
    ) {
        if self.closed {
            return;
        }
        if self.half_async.is_none() {
            let Some(machines) = machines() else {
                // Only a handler whose sans-IO side comes and goes gets here: it has none now.
                log::error!("pool: the handler offers no sans-IO side; closing the connection");
                return;
            };
            // Out of descriptors or threads: this connection is dropped (closed); the next one
            // tries again.
            if !self.start_half_async(machines, None) {
                return;
            }
        }
        // A datagram has no stream to put on the reactor; a datagram handler has no sans-IO
        // side either, so only a mismatched handler gets here: the datagram is dropped.
        if let (Some(h), Some((stream, peer))) = (&self.half_async, conn.into_parts()) {
            h.submit(stream, peer);
        }
    }

    /// Starts the reactor and its workers, with `listener` (a duplicate of the server's) for the
    /// reactor to accept from itself, or `None` for connections handed over by `submit`;
    /// `false` if it could not start (logged).
    fn start_half_async<M: Machines>(&mut self, machines: Arc<M>, listener: Option<Listener>) -> bool {
        let setup = Setup {
            run_on: RunOn::Workers,
            workers: self.threads,
            capacity: self.capacity(),
            stack_size: self.stack_size,
            accept_only_when_idle: self.accept_only_when_idle,
            reactor_name: "pool-reactor".into(),
            worker_prefix: "pool-worker-".into(),
            listener,
            shed: self.shed_when_full,
            lead: self.leader_followers,
        };
        match HalfAsync::start(machines, setup) {
            Ok(h) => {
                self.half_async = Some(h);
                // The byte-stream workers, if the first service_actions started them, have had
                // nothing to do and never will: stop them.
                if self.shared.is_some() {
                    self.stop_workers(true);
                    self.shared = None;
                }
                true
            }
            Err(e) => {
                log::error!("cannot start the pool's reactor: {e}");
                false
            }
        }
    }

    /// Requests answered `503` because the queue was full ([`shed_when_full`](Pool::shed_when_full));
    /// always 0 without it.
    pub fn requests_shed(&self) -> u64 {
        self.half_async.as_ref().map_or(0, |h| h.stats().shed)
    }

    /// Worker threads that ended unexpectedly and were replaced (a handler's panic does not end
    /// its worker, so this stays 0 unless something is badly wrong).
    pub fn workers_replaced(&self) -> u64 {
        self.replaced
    }

    /// Stops the byte-stream workers and the poller (waiting for them with `block`), keeping
    /// the shared state for the accessors.
    fn stop_workers(&mut self, block: bool) {
        let Some(shared) = self.shared.take() else { return };
        // Workers finish the queue, then exit; the poller sweeps its parked connections once
        // (readable ones are queued: a request is waiting there) and closes the rest.
        shared.lock().closing = true;
        shared.work.notify_all();
        shared.wake();
        if block {
            // The poller first: its final sweep may queue work that the workers must still do.
            if let Some(p) = self.poller.take() {
                let _ = p.join();
            }
            for w in self.workers.drain(..) {
                // Err: the worker died of a panic; its request is lost either way.
                let _ = w.join();
            }
        } else {
            // Detach: they finish on their own, or die with the process.
            self.poller = None;
            self.workers.clear();
        }
        // Keep answering the accessors (queued, parked) after close.
        self.shared = Some(shared);
    }

    /// Starts the pool if needed, replaces workers (and the poller) that died, and returns the
    /// shared state; `None` if the pool cannot start (no waker: out of descriptors).
    fn maintain(&mut self) -> Option<Arc<Shared>> {
        // Closed; or this pool serves a sans-IO protocol, whose threads are `half_async`'s.
        if self.closed || self.half_async.is_some() {
            return None;
        }
        let shared = match &self.shared {
            Some(s) => Arc::clone(s),
            None => match Shared::new() {
                Ok(s) => {
                    let s = Arc::new(s);
                    self.shared = Some(Arc::clone(&s));
                    s
                }
                Err(e) => {
                    log::error!("cannot start the thread pool (waker eventfd): {e}");
                    return None;
                }
            },
        };
        // A worker is never meant to end before close: one that has must have died.
        let before = self.workers.len();
        self.workers.retain(|w| !w.is_finished());
        let dead = before - self.workers.len();
        if dead > 0 {
            // The finished handles are dropped above; a dead thread has nothing left to join.
            log::error!("{dead} pool worker(s) died; starting replacements");
            self.replaced += dead as u64;
        }
        while self.workers.len() < self.threads {
            self.spawned += 1;
            let mut builder = std::thread::Builder::new().name(format!("pool-worker-{}", self.spawned));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let s = Arc::clone(&shared);
            match builder.spawn(move || worker_loop(&s)) {
                Ok(handle) => self.workers.push(handle),
                // EAGAIN (thread limit, memory): run with fewer workers; the next
                // service_actions tries again.
                Err(e) => {
                    log::error!("cannot start a pool worker: {e}");
                    break;
                }
            }
        }
        if self.poller.as_ref().is_none_or(|p| p.is_finished()) {
            if self.poller.take().is_some() {
                log::error!("the pool's poller died (its parked connections were closed); restarting it");
            }
            {
                let mut st = shared.lock();
                st.poller_done = false;
                // A dead poller's connections died with it (dropped, hence closed); only the
                // inbox, which the new poller takes over, is still parked.
                shared.parked.store(st.inbox.len(), Ordering::SeqCst);
            }
            let s = Arc::clone(&shared);
            match std::thread::Builder::new().name("pool-poller".into()).spawn(move || poller_loop(&s)) {
                Ok(handle) => self.poller = Some(handle),
                Err(e) => {
                    // Without a poller, parking is off: workers close what they would park.
                    shared.lock().poller_done = true;
                    log::error!("cannot start the pool's poller: {e}");
                }
            }
        }
        Some(shared)
    }
}

impl Concurrency for Pool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn process_request<H: RequestHandler>(&mut self, mut conn: Connection, dispatcher: &Dispatcher<H>) {
        // An HTTP handler (one with a sans-IO side) runs half-sync/half-async: the connection
        // lives on the reactor and a worker only ever runs the service on a complete request.
        if self.half_async.is_some() || (self.half_async_http && dispatcher.handler().sans_io().is_some()) {
            let (handler, id) = (Arc::clone(dispatcher.handler()), dispatcher.server_id());
            return self.process_machine(conn, move || HttpMachines::new(handler, id).map(Arc::new));
        }
        let Some(shared) = self.maintain() else {
            // Closed, or could not start: dropping the connection closes it.
            return;
        };
        // Parking is offered only while a poller runs to watch parked connections.
        conn.set_parkable(!shared.lock().poller_done);
        conn.set_queue_gauge(Arc::clone(&shared.queued));
        let run = Arc::clone(
            &self
                .runner
                .get_or_insert_with(|| {
                    let dispatcher = dispatcher.clone();
                    KeptRunner(Arc::new(move |c| dispatcher.run_parkable(c)))
                })
                .0,
        );
        let mut task = Some(Task { conn, run, fresh: true, unchecked: None });
        let capacity = self.capacity();
        while let Some(t) = task.take() {
            let mut st = shared.lock();
            if st.fresh < capacity {
                st.fresh += 1;
                shared.enqueue(st, t);
                break;
            }
            // Full: wait for a worker to take a task. This is the back-pressure: while the
            // accept thread waits here it accepts nothing, and new clients wait in the kernel's
            // listen backlog instead of in an ever-growing queue.
            st.room_waiters += 1;
            let (mut st, _) =
                shared.room.wait_timeout(st, FULL_QUEUE_CHECK).unwrap_or_else(PoisonError::into_inner);
            st.room_waiters -= 1;
            drop(st);
            task = Some(t);
            // If every worker had died, nobody would ever make room: replace the dead ones.
            self.maintain();
        }
    }

    fn service_actions(&mut self) {
        self.maintain();
    }

    /// On the reactor path the reactor accepts from the listener itself (a duplicate of it in
    /// its epoll set), so a new connection is read on the thread that accepted it: handing
    /// each connection from the server's accept thread to the reactor cost a thread wake-up
    /// per connection (`Connection: close` went from about 14 to 18 thousand requests a second
    /// without it; docs/benchmarks.md, "The event loop beside nginx"). Not for
    /// `accept_only_when_idle` (prefork's workers, which count requests before they accept),
    /// and not once the reactor was started without it (by `handle_request`).
    fn accept_on_own_threads<H: RequestHandler>(
        &mut self,
        listener: &Listener,
        dispatcher: &Dispatcher<H>,
    ) -> bool {
        if self.closed
            || self.accept_only_when_idle
            || !self.half_async_http
            || dispatcher.handler().sans_io().is_none()
        {
            return false;
        }
        if self.half_async.is_none() {
            let Some(machines) = HttpMachines::new(Arc::clone(dispatcher.handler()), dispatcher.server_id())
            else {
                return false;
            };
            let own = match listener.try_clone() {
                Ok(l) => l,
                // Out of descriptors: the accept thread hands connections over instead.
                Err(e) => {
                    log::error!("pool: cannot duplicate the listener for the reactor: {e}");
                    return false;
                }
            };
            if !self.start_half_async(Arc::new(machines), Some(own)) {
                return false;
            }
        } else if !self.half_async.as_ref().is_some_and(HalfAsync::has_listener) {
            return false;
        }
        if let Some(h) = &self.half_async {
            h.set_accepting(true);
        }
        true
    }

    fn stop_accepting(&mut self) {
        if let Some(h) = &self.half_async {
            h.set_accepting(false);
        }
    }

    fn has_capacity(&self) -> bool {
        if let Some(h) = &self.half_async {
            return h.has_room();
        }
        if !self.accept_only_when_idle {
            return true;
        }
        match &self.shared {
            // Not started yet: the first connection starts it, with every worker idle.
            None => true,
            Some(shared) => {
                let st = shared.lock();
                st.busy + st.fresh < self.threads
            }
        }
    }

    fn wait_for_capacity(&mut self, timeout: Duration) {
        if let Some(h) = &self.half_async {
            h.wait_for_room(timeout);
            return;
        }
        let Some(shared) = self.shared.clone() else { return };
        let deadline = Instant::now() + timeout;
        let mut st = shared.lock();
        while st.busy + st.fresh >= self.threads && !st.closing {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            st.room_waiters += 1;
            st = shared.room.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
            st.room_waiters -= 1;
        }
    }

    fn server_close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if let Some(h) = &mut self.half_async {
            h.close(self.block_on_close);
        }
        self.stop_workers(self.block_on_close);
    }
}

impl Drop for Pool {
    /// A pool dropped without `server_close` (a `Server` always calls it) still stops its
    /// threads, so they do not wait forever for work that will never come.
    fn drop(&mut self) {
        self.server_close();
    }
}

/// Whether a connection's socket has input (or EOF) waiting, without blocking.
fn readable_now(conn: &Connection) -> bool {
    crate::sys::wait_readable(conn.fd(), Some(Duration::ZERO)).unwrap_or(false)
}

/// A worker: take a task, run it, hand back a parked connection, repeat; exit when the pool is
/// closing, the queue is empty and the poller can queue nothing more.
fn worker_loop(shared: &Shared) {
    loop {
        let (task, room_wanted) = {
            let mut st = shared.lock();
            loop {
                if let Some(t) = st.queue.pop_front() {
                    shared.count_queue(&st);
                    if t.fresh {
                        st.fresh -= 1;
                    }
                    st.busy += 1;
                    break (Some(t), st.room_waiters > 0);
                }
                if st.closing && st.poller_done {
                    break (None, false);
                }
                st.idle_workers += 1;
                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle_workers -= 1;
            }
        };
        let Some(Task { conn, run, unchecked, .. }) = task else { return };
        // There is room in the queue now: let a waiting accept thread in.
        if room_wanted {
            shared.room.notify_one();
        }
        let busy = Busy(shared);
        if let Some(idle) = unchecked
            && !readable_now(&conn)
        {
            // Its client has not sent its next request yet: it waits in the poller like any
            // idle connection, not here on a worker.
            drop(busy);
            shared.park(Task { conn, run, fresh: false, unchecked: None }, idle);
            continue;
        }
        // run_parkable catches the handler's panics, so this returns.
        let back = run(conn);
        // No longer busy before parking: a connection is counted as busy or parked, never both
        // (the accessors, and the tests that read them, can rely on it).
        drop(busy);
        let Some((conn, idle)) = back else { continue };
        if shared.queued.load(Ordering::Relaxed) > 0 {
            // Others are waiting (the handler parked at once because of them: see
            // Connection::others_waiting). To the back of the queue directly, without asking
            // whether this client's next request is here: it has a whole turn of the queue to
            // arrive, and the worker that takes it then looks (above). A look now would
            // usually come too early, and the poller's route costs two thread wake-ups.
            let st = shared.lock();
            if !st.closing {
                shared.enqueue(st, Task { conn, run, fresh: false, unchecked: Some(idle) });
                continue;
            }
        }
        shared.park(Task { conn, run, fresh: false, unchecked: None }, idle);
    }
}

/// The poller: sleeps in the [`Reactor`] on every parked connection, with each one's idle
/// deadline as a reactor timer; queues the readable ones, closes the ones idle too long; at
/// close, sweeps once and ends.
fn poller_loop(shared: &Shared) {
    let _done = PollerDone(shared);
    let mut reactor: Reactor<Task> = match Reactor::with_waker(Arc::clone(&shared.waker)) {
        Ok(r) => r,
        Err(e) => {
            // No epoll set (out of descriptors or memory): nobody can watch parked connections.
            // PollerDone turns parking off; what was parked goes back to the workers, whose
            // handler calls see each socket's real state and decide.
            log::error!("pool poller: cannot create its reactor: {e}; parking is off");
            let inbox = std::mem::take(&mut shared.lock().inbox);
            shared.requeue(inbox.into_iter().map(|p| p.task).collect());
            return;
        }
    };
    let mut events = Vec::new();
    loop {
        let mut wake_up = Vec::new();
        let (inbox, closing) = {
            let mut st = shared.lock();
            (std::mem::take(&mut st.inbox), st.closing)
        };
        for p in inbox {
            match reactor.insert(p.task, Interest::READ) {
                Ok(token) => reactor.set_deadline(token, Some(p.deadline)),
                Err((task, e)) => {
                    // ENOMEM / ENOSPC (max_user_watches): it cannot be watched, so a worker
                    // looks at it (it waits there at most the handler's read timeout).
                    log::error!("pool poller: cannot watch a parked connection: {e}; requeueing it");
                    wake_up.push(task);
                }
            }
        }
        // Sleep until a parked connection is readable, one's idle deadline comes, or a worker
        // parks another (the waker). At close: just look, don't wait.
        events.clear();
        if let Err(e) = reactor.react(closing.then_some(Duration::ZERO), &mut events) {
            // EINVAL/ENOMEM: cannot watch the sockets. Queue them all rather than lose them:
            // each handler call sees its socket's real state (data, EOF, or a wait of
            // read_timeout) and decides.
            log::error!("pool poller: epoll_wait failed: {e}; requeueing every parked connection");
            wake_up.extend(reactor.tokens().into_iter().filter_map(|t| reactor.remove(t)));
        }
        let mut expired = 0;
        for &event in &events {
            match event {
                // Readable — data, EOF or an error — goes back to a worker. EOF and errors are
                // not closed here: the handler reads, sees them, and ends the connection its
                // usual way, so what a closed or reset socket means stays in one place (the
                // protocol layer), at the price of one quick job. (`remove` is `None` if an
                // earlier event of this batch took it already.)
                Event::Io(token, _) => wake_up.extend(reactor.remove(token)),
                // Idle past its deadline: close it silently, as the HTTP layer closes an idle
                // connection (there is no request to answer).
                Event::Timer(token) => {
                    if let Some(task) = reactor.remove(token) {
                        task.conn.close();
                        expired += 1;
                    }
                }
                // A worker parked a connection: the inbox is read at the top of the loop.
                Event::Woken => {}
                // The poller watches no listener.
                Event::Listener => {}
            }
        }
        if expired > 0 {
            shared.parked.fetch_sub(expired, Ordering::SeqCst);
        }
        shared.requeue(wake_up);
        if closing {
            // Final sweep done: what is left is idle; close it.
            let n = reactor.len();
            for token in reactor.tokens() {
                if let Some(task) = reactor.remove(token) {
                    task.conn.close();
                }
            }
            shared.parked.fetch_sub(n, Ordering::SeqCst);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::ServerContext;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;

    /// A connection on loopback (the server side), and its client side.
    fn conn() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        (Connection::new(stream, peer, ServerContext::standalone(addr).unwrap()), client)
    }

    /// Waits (bounded) until `cond` holds.
    fn until(mut cond: impl FnMut() -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if cond() {
                return true;
            }
            std::thread::yield_now();
        }
        cond()
    }

    #[test]
    fn defaults() {
        let p = Pool::new(0);
        assert_eq!((p.threads(), p.capacity(), p.block_on_close), (1, DEFAULT_QUEUE_PER_THREAD, true));
        assert_eq!(Pool::new(3).capacity(), 12);
        assert_eq!(Pool::new(3).queue_size(0).capacity(), 1);
        // Nothing starts until the server runs.
        assert_eq!((p.workers(), p.queued(), p.parked(), p.busy()), (0, 0, 0, 0));
    }

    #[test]
    fn a_worker_that_dies_is_replaced_and_the_pool_goes_on() {
        let mut pool = Pool::new(2);
        let shared = pool.maintain().expect("pool starts");
        assert_eq!(pool.workers(), 2);
        // A runner that panics *outside* Dispatcher::run_parkable's catch_unwind: the kind of bug that
        // could kill a worker. (A handler's panic cannot: see tests/pool.rs.)
        let (c, _client) = conn();
        let run: Runner = Arc::new(|_| panic!("a bug outside the handler (this panic is expected)"));
        shared.lock().queue.push_back(Task { conn: c, run, fresh: false, unchecked: None });
        shared.work.notify_one();
        assert!(until(|| pool.workers() == 1), "the worker died");
        assert_eq!(pool.busy(), 0, "the dead worker's busy count was released");
        pool.service_actions();
        assert_eq!((pool.workers(), pool.workers_replaced()), (2, 1));
        // The pool still runs work, on both workers.
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let (c, _client) = conn();
            let tx = Mutex::new(tx.clone());
            let run: Runner = Arc::new(move |_| {
                let _ = tx.lock().unwrap().send(());
                None
            });
            shared.lock().queue.push_back(Task { conn: c, run, fresh: false, unchecked: None });
            shared.work.notify_one();
        }
        for _ in 0..4 {
            rx.recv_timeout(Duration::from_secs(5)).expect("a replacement worker ran the task");
        }
        pool.server_close();
        assert_eq!(pool.workers(), 0, "close joined every worker");
    }
}
