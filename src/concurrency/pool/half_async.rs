//! The [`Pool`](super::Pool) as *half-sync/half-async* (Schmidt & Cranor's pattern; Tomcat NIO,
//! Apache's event MPM): for a protocol written as a state machine with no I/O in it
//! ([`ConnMachine`]), no thread ever waits on a client.
//!
//! ```text
//!  accept thread     reactor thread (async half)                     workers (sync half: N)
//!  ─────────────     ───────────────────────────                     ──────────────────────
//!  accept() ──────▶  every connection, non-blocking, in one Reactor
//!  (only while       (or accept() itself: Setup::listener, the Pool's and the loops' own)
//!   has_capacity)    read what is there ─▶ machine.received ─▶ next_request
//!                      complete request + token ──────▶ bounded queue ──▶ call(request)
//!                    (Pool: + machine)   machine back ◀── channel ◀── respond, write what fits
//!                    (EventLoop offload) respond ◀── channel + Waker ◀──── Answer ◀──┘
//!                    write output until WouldBlock; interest from wants(),
//!                    a reactor timer from deadline()
//! ```
//!
//! What each side may do:
//! * The **reactor** never blocks: its sockets are non-blocking, it reads at most a budget per
//!   readiness event (level-triggered: the rest is reported again), and it writes until
//!   `WouldBlock`, then waits for writability. A client that sends slowly, or reads slowly, or
//!   not at all, costs a slot in the slab, its machine's buffers and a timer — not a thread.
//! * A **worker** only runs the service on a request that is complete. On the Pool it gets
//!   the connection's machine with the request (`Driver::lend`), gives it the answer, writes
//!   the response with the same non-blocking writes as the reactor (never waiting: what the
//!   client does not take at once is left to the reactor), and gives the machine back, waking
//!   the reactor only if it has something to do at once. It never reads a socket.
//!
//! **Order.** At most one request per connection is out at a time: after `next_request` returns
//! one, the machine says [`Want::Service`] (or, on the Pool, is with the worker), and nothing more
//! is read from that connection until the answer is back, so pipelined requests wait (in the kernel
//! or the machine's buffer) and are answered in order. Those already in the machine's buffer are
//! answered before the output is written (the machine says `Service` before `Write` while the
//! gathered answers are small), so a pipeline that arrived in one read leaves in one write: on the
//! loop thread, or on the worker, which answers them all before it writes. (On the Pool the socket
//! stays in epoll meanwhile, so that the client's next request wakes the reactor; the first
//! readiness while the worker holds the machine takes it out until the machine is back.)
//!
//! **Back-pressure.** The queue between the halves is bounded. When it is full (every worker
//! busy, `queue_size` requests waiting), the reactor stops reading: a connection that is
//! readable is *stalled* (out of epoll, its deadline suspended — the wait is the server's
//! fault, not the client's) in FIFO order until a worker takes a request, and
//! [`has_room`](HalfAsync::has_room) is `false`, so the server stops accepting and new clients
//! wait in the listen backlog. Memory stays bounded: requests waiting ≤ queue size, bytes
//! buffered ≤ connections × the machine's own limits.
//!
//! **Leader/followers** ([`Setup::lead`], the Pool's default). There is no reactor thread: the
//! [`Driver`] sits behind a mutex and the workers take turns at it (`lead_loop`). The *leader*
//! runs one pass ([`Driver::pass`]: one `react()`, the accepts, reads and writes it reports),
//! gives up the role and runs what that pass queued itself, so a request is read, served and
//! written on one thread with no wake-up of another. One idle worker is the *sentry*: it ticks
//! every [`SENTRY_TICK`] while a leader holds the role and takes the role when it has stayed
//! free for a tick (the former leader is running a long request), so a slow service keeps the
//! reactor from reading for a tick at most; it wakes the other followers when a request has
//! waited in the queue for a tick; and it sleeps without ticking while the leader waits in
//! `epoll_wait` with nothing queued (the leader wakes it when its next pass begins). While every
//! worker runs a request nobody reads: that is back-pressure anyway, but it is why shedding
//! (which must answer while the workers are full) and connections handed over by `submit` use
//! the reactor thread instead.
//!
//! **Load shedding** ([`Setup::shed`], `Pool::shed_when_full`). Instead of stalling, the
//! reactor answers a complete request itself with the machine's refusal (HTTP: `503` with
//! `Retry-After` and `Connection: close`), at once and without a worker, and keeps reading and
//! accepting: a client learns in a millisecond that the server is full instead of waiting
//! behind it. Memory stays bounded the same way (nothing is queued beyond the bound; a refused
//! connection closes).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::reactor::{Event, Interest, Reactor, Token, Waker};
use crate::transport::{Addr, Listener, Stream};

/// What a connection wants from its driver next: the HTTP layer's own `Want` (read, write, the
/// service, drain, close), which every machine this driver runs answers with.
pub(crate) use crate::http::Want;

/// A connection as a state machine with no I/O in it: bytes in, requests out; answers in,
/// bytes out. The reactor drives it; the HTTP layer's `HttpConn` implements it.
pub(crate) trait ConnMachine: Send + 'static {
    /// A complete request, handed to a worker.
    type Request: Send + 'static;
    /// What the service made of it, handed back.
    type Answer: Send + 'static;
    /// Space to read into (never empty while the machine wants to read).
    fn read_buf(&mut self) -> &mut [u8];
    /// `n` bytes were read into `read_buf()`; `n == 0` is EOF.
    fn received(&mut self, n: usize, now: Instant);
    /// The next complete request, in order; `None` while one is out (until `respond`).
    fn next_request(&mut self, now: Instant) -> Option<Self::Request>;
    /// The answer to the request last handed out.
    fn respond(&mut self, request: Self::Request, answer: Self::Answer, now: Instant);
    /// Bytes to write; then `sent(n)`.
    fn output(&self) -> &[u8];
    /// `n` bytes of `output()` were written.
    fn sent(&mut self, n: usize, now: Instant);
    /// The peer reset, or a read or write failed: the connection is over.
    fn failed(&mut self);
    /// What it wants next.
    fn wants(&self) -> Want;
    /// When `timed_out` is due if nothing happens before; `None`: no deadline.
    fn deadline(&self) -> Option<Instant>;
    /// The deadline passed.
    fn timed_out(&mut self, now: Instant);
    /// The server is stopping: close when idle, finish what is in progress.
    fn stopping(&mut self, now: Instant);
    /// A read found nothing more (`EWOULDBLOCK`): the connection waits now, and may give back
    /// buffers it does not need meanwhile. Default: nothing.
    fn would_block(&mut self) {}
    /// Whether the connection ends once `output()` is written. A worker that holds the machine
    /// (`Driver::lend`) leaves such output to the reactor, which writes it and closes in one
    /// pass: the client then never sees the whole response before the server has let go of
    /// the connection. Default: no.
    fn closes_after_output(&self) -> bool {
        false
    }
    /// Whether the connection ends after the answer to `request`, the request just handed
    /// out, whatever the answer (HTTP: the request said `Connection: close`). The reactor then
    /// does not watch the socket while a worker holds the machine: no request can follow, and
    /// a connection that was never in epoll costs no `epoll_ctl` to add and remove. Default: no.
    fn ends_after(&self, request: &Self::Request) -> bool {
        let _ = request;
        false
    }
}

/// Makes machines and runs the service: the contract's `SansIo`, typed. `HttpHandler` is one
/// (through its `sans_io()` hook).
pub(crate) trait Machines: Send + Sync + 'static {
    /// The connection machine.
    type Conn: ConnMachine;
    /// A new connection's machine.
    fn new_conn(&self, peer: Addr, now: Instant) -> Self::Conn;
    /// Sets the protocol's socket options on a new connection, before its first read.
    /// Default: none.
    fn configure(&self, stream: &Stream) {
        let _ = stream;
    }
    /// Sets those options on a reactor's own listener instead, once, for the connections it
    /// accepts to inherit; `true` if that covers everything [`configure`](Machines::configure)
    /// does, which is then not called for them. Default: nothing to set, `true`.
    fn configure_listener(&self, listener: &Listener) -> bool {
        let _ = listener;
        true
    }
    /// Whether to serve a connection from `peer` (`verify_request`), asked by a reactor that
    /// accepts from its own listener. Default: yes.
    fn verify(&self, peer: &Addr) -> bool {
        let _ = peer;
        true
    }
    /// Runs the service on a complete request: its answer now, or what makes it later (a
    /// timer, or work for an offload worker). Called on a worker ([`RunOn::Workers`]), which
    /// then [waits](Later::wait) for a later answer, or on the reactor thread itself
    /// ([`RunOn::Loop`]), which does not.
    fn call(&self, request: &Req<Self>) -> Later<Ans<Self>>;
    /// Runs the service on a worker, which waits for a later answer: [`call`](Machines::call)
    /// then [`Later::wait`], unless the protocol does better (HTTP times the whole wait for its
    /// slow-request warning).
    fn call_and_wait(&self, request: &Req<Self>) -> Ans<Self> {
        self.call(request).wait()
    }
    /// The answer to a request refused because every worker is busy and the queue is full
    /// (load shedding, [`Setup::shed`]), made on the reactor thread without the service: it
    /// must be cheap and must not block. `retry_after`: when the client may try again.
    fn shed(&self, request: &Req<Self>, retry_after: Duration) -> Ans<Self>;
}

/// What the service made of a request: an answer now, or the work that makes it later (the
/// HTTP layer's type, for any answer). The work never panics: the protocol layer catches panics
/// inside it (HTTP turns them into 500s).
pub(crate) use crate::http::{Later, Work};

/// Where the service runs: the one thing that differs between the [`Pool`](crate::Pool) and
/// the [`EventLoop`](crate::EventLoop), which otherwise share this driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOn {
    /// On a worker thread (the Pool): the reactor only reads and writes, and a worker waits
    /// for a later answer (sleeps, or runs the offloaded work inline).
    Workers,
    /// On the reactor thread itself (the EventLoop): a later answer is a reactor timer, or a
    /// job for the offload workers (run on the loop if there are none).
    Loop,
}

/// How to start a [`HalfAsync`].
#[derive(Debug)]
pub(crate) struct Setup {
    /// Where the service runs.
    pub(crate) run_on: RunOn,
    /// Worker threads: the Pool's workers, or the EventLoop's offload workers (may be 0 then).
    pub(crate) workers: usize,
    /// Room for requests (or offloaded jobs) waiting for a worker.
    pub(crate) capacity: usize,
    /// Workers' stack size; `None`: Rust's default.
    pub(crate) stack_size: Option<usize>,
    /// `Pool::accept_only_when_idle` (see `Shared::accept_limit`).
    pub(crate) accept_only_when_idle: bool,
    /// The reactor thread's name.
    pub(crate) reactor_name: String,
    /// The workers' names, numbered from 1 after this prefix.
    pub(crate) worker_prefix: String,
    /// A listening socket (the server's, duplicated) this reactor accepts from itself, watched
    /// with `EPOLLEXCLUSIVE` beside the other reactors that share it, while
    /// [`set_accepting`](HalfAsync::set_accepting) says so. `None`: connections come only
    /// through [`submit`](HalfAsync::submit).
    pub(crate) listener: Option<Listener>,
    /// Load shedding: `Some(retry_after)` answers a complete request that finds the queue full
    /// with [`Machines::shed`] instead of stalling its connection, and keeps accepting. `None`
    /// (the default everywhere but a `Pool` told otherwise): stall and stop accepting.
    pub(crate) shed: Option<Duration>,
    /// Leader/followers (see [`lead_loop`]): no reactor thread of its own; the workers take turns
    /// at the reactor, and the one that read a request runs it. Only for [`RunOn::Workers`] with
    /// a listener of its own, no shedding and no accept limit (each needs a thread that reacts
    /// while every worker is busy); ignored otherwise.
    pub(crate) lead: bool,
}

type Req<M> = <<M as Machines>::Conn as ConnMachine>::Request;
type Ans<M> = <<M as Machines>::Conn as ConnMachine>::Answer;

/// A request for a worker, type-erased: it runs the service, sends the answer back and wakes
/// the reactor. Workers need not know the protocol.
type Job = Box<dyn FnOnce() + Send>;

/// How much the reactor reads from one connection per readiness event. Level-triggered epoll
/// reports what is left, so a client that sends fast cannot keep the loop to itself.
const READ_BUDGET: usize = 64 * 1024;

/// How long a closed connection is drained (after our FIN) for the peer's EOF, so that closing
/// with unread input does not send a reset that destroys the response the peer has not read.
const LINGER: Duration = Duration::from_secs(2);

/// How many bytes a lingering close reads (and drops) at most.
const LINGER_BYTES: usize = 1 << 20;

/// How many connections a reactor with its own listener accepts per readiness event: one, as
/// nginx does by default (`multi_accept off`). The listener is shared with the other loops and
/// level-triggered: what this loop leaves is reported again, to it or to a sibling that is
/// idle. A loop that took a whole burst at once would serve it alone while its siblings idle.
/// (On 2 cores, `wrk -t2 -c32` gave the same throughput with a batch of 64, within the noise.)
const ACCEPT_BATCH: usize = 1;

/// While a worker holds a connection's machine (`Driver::lend`), the reactor looks at the
/// connection again after this long, in case the machine came back without a wake-up to a
/// reactor that sleeps: an idle deadline is then late by at most this much.
const AWAY_CHECK: Duration = Duration::from_millis(100);

/// Leader/followers: how often the *sentry* (one idle worker) looks at the others while requests
/// are running, and how long the reactor may go without a leader before it takes the role: a
/// request that runs longer than about this on the thread that read it gets the reactor taken
/// from under it, so that the other connections wait at most this long for a reader.
const SENTRY_TICK: Duration = Duration::from_millis(1);

/// How long a connection waits in the backlog for a sibling with a free thread before a worker
/// whose threads are all busy takes it anyway (`Shared::accept_limit`). A sibling that is free
/// takes it within a millisecond or so; this only bounds the wait when none is.
const LIMIT_GRACE: Duration = Duration::from_millis(50);

/// How long it stops accepting after an `accept` error that retrying cannot fix at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The reactor's and the workers' shared state.
struct Shared {
    state: Mutex<State>,
    /// Workers wait here for requests.
    work: Condvar,
    /// An accept thread waits here (in `wait_for_room`) for room in the queue.
    room: Condvar,
    waker: Arc<Waker>,
    /// The reactor is about to wait, or waits, in `epoll_wait`: only then does a worker with an
    /// answer or room for a stalled connection (or the accept thread with a connection) write
    /// the waker's eventfd. While the
    /// reactor is awake it looks at the answers and the incoming connections before it waits
    /// again, so a wake-up then would be a system call (and, at worst, a spurious extra pass)
    /// for nothing: with a busy reactor that was one `write(2)` per request (strace, docs/costs.md).
    asleep: AtomicBool,
    /// Answers sent on the channel and not yet received by the reactor (counted before the
    /// send): the reactor does not sleep while this is above 0.
    answers_waiting: AtomicUsize,
    /// `state.queue.len()`, written under the lock at every push and pop, read without it by
    /// the reactor, which asks "is the queue full?" two or three times per request: taking the
    /// lock for that made the reactor and the workers contend for it (futex calls). A stale
    /// answer is harmless: a connection stalled by mistake is let on at the next pass, and a
    /// worker's answer always brings one.
    queued: AtomicUsize,
    /// `State::closing`, readable without the lock: a worker that answers a request while the
    /// server stops tells the connection's machine first (it then closes after the answer).
    stopping: AtomicBool,
    capacity: usize,
    /// `Some(threads)`: accept only while a worker would be free for one more request
    /// (`Pool::accept_only_when_idle`, which `Prefork` sets so that a worker whose threads are
    /// all busy leaves new connections to an idle sibling). Only requests count, never
    /// connections still sending theirs: counting those would let slow clients stop the
    /// accepting, which is what this design is for. The price: clients that all connect first
    /// and send a moment later (the bundled client's fire mode) are spread by connection, not by
    /// request, and one worker may get more requests than it has threads (docs/05). A
    /// connection no sibling has taken within [`LIMIT_GRACE`] is accepted anyway (see `room`).
    accept_limit: Option<usize>,
    /// `Setup::shed` is on: a full queue sheds requests instead of stopping the accepting.
    shed: bool,
    /// Leader/followers: the sentry waits here (see [`lead_loop`]).
    sentry: Condvar,
    /// The sentry sleeps without a timeout (the server was quiet): the leader wakes it at the
    /// start of its next pass.
    sentry_deep: AtomicBool,
    /// `Driver::passes`, published for the sentry (leader/followers): its sign that the server
    /// is busy.
    passes: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Accepted, not yet seen by the reactor.
    incoming: Vec<(Stream, Addr)>,
    /// Taken from `incoming` by the reactor in its current pass, not yet counted in
    /// `in_service` (the pass's `publish` does): without it, a just-accepted connection whose
    /// request is about to be queued would count nowhere for a moment, and the accept limit
    /// would let a burst in past it.
    taken: usize,
    busy: usize,
    idle_workers: usize,
    room_waiters: usize,
    /// Kept up to date by the reactor: connections it holds, those with a request out, and
    /// those stalled by a full queue.
    connections: usize,
    in_service: usize,
    stalled: usize,
    /// Requests refused by load shedding so far.
    shed: u64,
    closing: bool,
    reactor_done: bool,
    /// A reactor with its own listener accepts from it (see `Setup::listener`).
    accepting: bool,
    /// Leader/followers: a worker holds the reactor role (is in a pass).
    leading: bool,
    /// Leader/followers: when the last leader let go of the role, if nobody took it since.
    role_free_since: Option<Instant>,
    /// Leader/followers: an idle worker is the sentry.
    has_sentry: bool,
    /// Leader/followers: a follower was woken to be the sentry and has not taken the post yet
    /// (so that the leader's next jobs do not wake another: `appoint_sentry`).
    sentry_called: bool,
    /// Jobs taken from the queue so far (the sentry's sign of progress).
    popped: u64,
    /// Since when the accept limit alone has kept the accept thread out (see `Shared::room`).
    limited_since: Option<Instant>,
}

impl Shared {
    /// Whether the accept thread may take another connection: the queue has room and nothing
    /// is stalled (or, with connections stalled, none is on its way in already: the new one
    /// joins their line), and (with an accept limit) requests running, queued or about to be
    /// (just accepted) leave a worker free, or no sibling has taken it within [`LIMIT_GRACE`].
    fn room(&self, st: &mut State) -> bool {
        let pending = st.incoming.len() + st.taken + st.in_service.max(st.busy + st.queue.len());
        // Shedding: a full queue is answered with a refusal, not by waiting, so the server keeps
        // accepting (a client that waited in the backlog would not hear the 503).
        // With connections stalled, a new one joins the back of their line (accepted, not
        // read), one per reactor pass, rather than wait until nobody is stalled: see `pass`.
        let room = !st.closing
            && (self.shed
                || (st.queue.len() < self.capacity
                    && (st.stalled == 0 || st.incoming.len() + st.taken == 0)));
        match self.accept_limit {
            None => room,
            // A full queue: real back-pressure (the clock below, if it runs, keeps running).
            Some(_) if !room => false,
            Some(n) if pending < n => {
                st.limited_since = None;
                true
            }
            Some(_) => {
                // Every thread has a request: leave the connection to a sibling with a free
                // thread -- for a while. If every sibling is as busy (kept-alive clients that
                // always have a request ready), waiting until a thread is free would leave the
                // backlog waiting for as long as those clients send: 25 of 32 clients of one
                // such worker saw no answer in 5 s. So one connection comes in per grace (the
                // clock starts again when it is handed over: `submit`).
                match st.limited_since {
                    Some(t) => t.elapsed() >= LIMIT_GRACE,
                    None => {
                        st.limited_since = Some(Instant::now());
                        false
                    }
                }
            }
        }
    }

    /// How long the accept thread may still wait for room before [`room`](Shared::room)
    /// changes its mind by itself (the accept limit's grace), if it is counting.
    fn grace_left(&self, st: &State) -> Option<Duration> {
        st.limited_since.map(|t| LIMIT_GRACE.saturating_sub(t.elapsed()))
    }

    /// Takes the next job for the calling worker, which counts as busy from now on, and tells
    /// whoever the room it makes concerns: the reactor, if connections are stalled or the queue
    /// was full (woken if it sleeps: it looks for room before it does), and an accept thread
    /// waiting for room.
    fn take_job(&self, st: &mut State) -> Option<Job> {
        let job = st.queue.pop_front()?;
        let was_full = st.queue.len() + 1 >= self.capacity;
        self.queued.store(st.queue.len(), Ordering::SeqCst);
        st.busy += 1;
        st.popped += 1;
        // A full queue took the listener out of epoll (back-pressure): this room puts it back.
        // Without the wake-up, a reactor asleep with nothing stalled would see the room only at
        // its next timer, and new clients would wait that long in the backlog (100 ms, a lent
        // machine's check, with a worker idle).
        if st.stalled > 0 || was_full {
            self.wake_reactor();
        }
        if st.room_waiters > 0 {
            self.room.notify_all();
        }
        Some(job)
    }

    /// Runs a job that [`take_job`](Shared::take_job) gave, then counts its worker free again
    /// (with an accept limit, that is room for one more connection). The job's service catches
    /// its own panics (the HTTP layer turns them into 500s); this is for a bug anywhere else,
    /// so that it costs a request (the job's guard tells the reactor), not the worker.
    fn run_job(&self, job: Job) -> MutexGuard<'_, State> {
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("a pool job panicked outside the service; its connection is closed");
        }
        let mut st = self.lock();
        st.busy -= 1;
        if st.room_waiters > 0 && self.accept_limit.is_some() {
            self.room.notify_all();
        }
        st
    }

    /// The reactor is over (its thread ended, or a leader's pass said so): no connection is
    /// left, and every waiting worker, accept thread and sentry is told.
    fn reactor_gone(&self, st: &mut State) {
        st.reactor_done = true;
        st.connections = 0;
        st.stalled = 0;
        st.in_service = 0;
        self.work.notify_all();
        self.room.notify_all();
        self.sentry.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below is complete at each step: a poisoned lock holds nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the reactor if it sleeps (see `asleep`), after something it looks at before
    /// sleeping was published: an answer (`answers_waiting` raised first), an incoming
    /// connection (pushed under the lock), or room in the queue for a stalled connection
    /// (`queued` lowered first). Why no wake-up is lost: the reactor sets `asleep`
    /// and *then* looks at those; this side publishes and *then* reads `asleep` (all SeqCst, or
    /// ordered by the lock), so either the reactor sees the work and does not block, or this
    /// sees `asleep` and wakes it. `swap`: of several threads finishing at once, one writes.
    fn wake_reactor(&self) {
        if self.asleep.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// Numbers for tests and accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stats {
    /// Connections on the reactor.
    pub(crate) connections: usize,
    /// Connections waiting for an answer (their request queued or running).
    pub(crate) in_service: usize,
    /// Connections stalled by a full queue.
    pub(crate) stalled: usize,
    /// Requests in the queue.
    pub(crate) queued: usize,
    /// Workers running a request.
    pub(crate) busy: usize,
    /// Requests refused by load shedding so far.
    pub(crate) shed: u64,
}

/// The running machinery of a Pool (or of an event loop's offload): a reactor and N workers,
/// the reactor on a thread of its own or a role the workers take turns at (`Setup::lead`).
pub(crate) struct HalfAsync {
    shared: Arc<Shared>,
    has_listener: bool,
    reactor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HalfAsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HalfAsync").field("stats", &self.stats()).finish()
    }
}

impl HalfAsync {
    /// Starts the reactor (a thread, unless the workers lead) and the workers for `machines`,
    /// as `setup` says.
    pub(crate) fn start<M: Machines>(machines: Arc<M>, setup: Setup) -> io::Result<HalfAsync> {
        let Setup { run_on, workers: threads, capacity, stack_size, accept_only_when_idle, shed, .. } = setup;
        // The Pool needs a worker to run anything; the event loop's offload workers are optional.
        let threads = if run_on == RunOn::Workers { threads.max(1) } else { threads };
        let has_listener = setup.listener.is_some();
        // Once on the listener rather than once per connection, where the kernel allows it.
        let inherited = setup.listener.as_ref().is_some_and(|l| machines.configure_listener(l));
        let waker = Arc::new(Waker::new()?);
        let reactor = Reactor::with_waker(Arc::clone(&waker))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            waker,
            asleep: AtomicBool::new(false),
            answers_waiting: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            capacity: capacity.max(1),
            accept_limit: accept_only_when_idle.then_some(threads.max(1)),
            shed: shed.is_some(),
            sentry: Condvar::new(),
            sentry_deep: AtomicBool::new(false),
            passes: AtomicU64::new(0),
        });
        let lead = setup.lead
            && run_on == RunOn::Workers
            && has_listener
            && !accept_only_when_idle
            && shed.is_none();
        let (tx, rx) = mpsc::channel();
        let driver = Driver {
            run_on,
            workers: threads,
            reactor,
            machines,
            shared: Arc::clone(&shared),
            answers: rx,
            answers_tx: tx,
            stalled: VecDeque::new(),
            in_service: 0,
            stopping: false,
            events: Vec::new(),
            listener: setup.listener,
            inherited,
            listening: false,
            accept_paused_until: None,
            shed,
            shed_count: 0,
            lead,
            passes: 0,
        };
        // Leader/followers: the driver is the role the workers pass around; no reactor thread.
        let (mut driver, shared_driver) =
            if lead { (None, Some(Arc::new(Mutex::new(driver)))) } else { (Some(driver), None) };
        let mut workers = Vec::new();
        for i in 0..threads {
            let mut b = std::thread::Builder::new().name(format!("{}{}", setup.worker_prefix, i + 1));
            if let Some(bytes) = stack_size {
                b = b.stack_size(bytes);
            }
            let s = Arc::clone(&shared);
            let d = shared_driver.clone();
            let spawned = b.spawn(move || match d {
                Some(d) => lead_loop(&s, &d),
                None => worker_loop(&s),
            });
            match spawned {
                Ok(h) => workers.push(h),
                // Fewer workers than asked is still a pool; none is not.
                Err(e) if !workers.is_empty() => {
                    log::error!("cannot start a pool worker: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let Some(mut driver) = driver.take() else {
            return Ok(HalfAsync { shared, has_listener, reactor: None, workers });
        };
        let spawned = std::thread::Builder::new().name(setup.reactor_name).spawn(move || driver.run());
        let reactor = match spawned {
            Ok(h) => h,
            Err(e) => {
                // Let the workers end: they wait for a reactor that will not come.
                let mut st = shared.lock();
                st.closing = true;
                st.reactor_done = true;
                drop(st);
                shared.work.notify_all();
                return Err(e);
            }
        };
        Ok(HalfAsync { shared, has_listener, reactor: Some(reactor), workers })
    }

    /// Hands an accepted connection to the reactor (it never waits: back-pressure is
    /// [`has_room`](HalfAsync::has_room), asked before `accept`).
    pub(crate) fn submit(&self, stream: Stream, peer: Addr) {
        let mut st = self.shared.lock();
        if st.reactor_done {
            // Nobody would serve it: dropping it closes it.
            return;
        }
        st.incoming.push((stream, peer));
        if st.limited_since.is_some() {
            // Let in past the accept limit: the next one waits a grace of its own.
            st.limited_since = Some(Instant::now());
        }
        drop(st);
        self.shared.wake_reactor();
    }

    /// Whether the server should accept now: room in the request queue, and nobody stalled or
    /// the stalled ones' line open to one more (see `Shared::room`).
    pub(crate) fn has_room(&self) -> bool {
        self.shared.room(&mut self.shared.lock())
    }

    /// Waits, at most `timeout`, for [`has_room`](HalfAsync::has_room).
    pub(crate) fn wait_for_room(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while !st.closing && !self.shared.room(&mut st) {
            let Some(mut left) = deadline.checked_duration_since(Instant::now()) else { break };
            if let Some(grace) = self.shared.grace_left(&st) {
                left = left.min(grace.max(Duration::from_millis(1)));
            }
            st.room_waiters += 1;
            st = self.shared.room.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
            st.room_waiters -= 1;
        }
    }

    /// The numbers of the moment.
    pub(crate) fn stats(&self) -> Stats {
        let st = self.shared.lock();
        Stats {
            connections: st.connections + st.incoming.len(),
            in_service: st.in_service,
            stalled: st.stalled,
            queued: st.queue.len(),
            busy: st.busy,
            shed: st.shed,
        }
    }

    /// Worker threads alive.
    pub(crate) fn workers(&self) -> usize {
        self.workers.iter().filter(|w| !w.is_finished()).count()
    }

    /// Whether it was started with a listener of its own (`Setup::listener`).
    pub(crate) fn has_listener(&self) -> bool {
        self.has_listener
    }

    /// Whether a reactor with its own listener accepts from it (the server loop turns this on
    /// while it serves, off when it stops serving).
    pub(crate) fn set_accepting(&self, on: bool) {
        self.shared.lock().accepting = on;
        self.shared.waker.wake();
    }

    /// Tells the threads to stop, without waiting: [`close`](HalfAsync::close) does this
    /// first; several event loops are all told before any is waited for.
    pub(crate) fn stop(&self) {
        self.shared.lock().closing = true;
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.waker.wake();
        self.shared.work.notify_all();
        self.shared.room.notify_all();
        drop(self.shared.lock());
        self.shared.sentry.notify_all();
    }

    /// Stops: connections are told the server is stopping (idle ones close, requests in
    /// progress finish), then the threads end. With `block`, waits for that.
    pub(crate) fn close(&mut self, block: bool) {
        self.stop();
        if block {
            if let Some(r) = self.reactor.take() {
                // Err: the reactor panicked (a bug); its connections were dropped, hence closed.
                let _ = r.join();
            }
            for w in self.workers.drain(..) {
                let _ = w.join();
            }
        } else {
            self.reactor = None;
            self.workers.clear();
        }
    }
}

/// A worker: take a job, run it, repeat; end when closing, the reactor gone and the queue empty.
fn worker_loop(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if let Some(job) = shared.take_job(&mut st) {
            drop(st);
            st = shared.run_job(job);
            continue;
        }
        if st.reactor_done {
            return;
        }
        st.idle_workers += 1;
        st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
        st.idle_workers -= 1;
    }
}

/// A worker under *leader/followers* (Schmidt, O'Ryan, Pyarali, Cranor: the pattern that
/// removes half-sync/half-async's hand-off): there is no reactor thread; the reactor (the
/// [`Driver`]) is a role the workers pass around. At most one worker holds it, the *leader*:
/// it makes one pass (waits in `epoll_wait`, reads, queues the complete requests it found, writes),
/// lets go of the role, and runs the requests it queued itself, on the thread that read them,
/// with no wake-up of another thread. Then it takes the role again, if nobody has. The others
/// are *followers*: they wait.
///
/// A request may block (a slow backend, `/delay`), and while the former leader runs it nobody
/// reads. So one follower is the *sentry*: while requests run, it wakes every [`SENTRY_TICK`]
/// and, if the role has been free that long, takes it (the connections wait at most a tick or
/// two for a reader), and if a request has waited in the queue since the last tick, wakes the
/// other followers to run the queue. A sentry that finds the server quiet (the leader
/// asleep in `epoll_wait`, no pass since the last tick) sleeps without a timeout; the leader
/// wakes it at the start of its next pass. So a busy server costs a thousand sentry wake-ups a
/// second in all, not one per request; an idle one, none.
///
/// What a slow client costs is unchanged: nobody waits on a client in a pass, and a request
/// reaches a thread only once it is complete. What changes: a request that blocks holds up the
/// reading of the others for up to a tick or two; and when every worker runs a request, nobody
/// reads or accepts (back-pressure, with the queue as the bound, as before).
fn lead_loop<M: Machines>(shared: &Shared, driver: &Mutex<Driver<M>>) {
    let mut st = shared.lock();
    // The sentry found the role free for too long: take it before running anything queued.
    let mut take_role = false;
    // Woken as a follower: if no sentry watches, this thread was most likely called to be it.
    let mut woken = false;
    loop {
        // Called to be the sentry: take the post, not the leader's jobs. The leader runs what
        // it read itself (no second thread touches those connections, so the next pass finds
        // their machines back, not lent); the sentry calls for help when a request has waited
        // in the queue for a tick.
        let be_sentry = woken && !take_role && !st.has_sentry && !st.reactor_done;
        woken = false;
        // (The room a job makes lets a stalled connection on at the next pass, usually this
        // thread's own after its jobs; a leader asleep in epoll_wait is woken.)
        if !take_role
            && !be_sentry
            && let Some(job) = shared.take_job(&mut st)
        {
            appoint_sentry(shared, &mut st);
            drop(st);
            st = shared.run_job(job);
            continue;
        }
        take_role = false;
        if st.reactor_done {
            return;
        }
        if !be_sentry && !st.leading {
            st.leading = true;
            st.role_free_since = None;
            appoint_sentry(shared, &mut st);
            drop(st);
            // A pass never blocks on a client; a panic there is a bug of this crate's, and
            // ends the reactor for everyone (as on the reactor thread: connections dropped).
            let passed = catch_unwind(AssertUnwindSafe(|| {
                driver.lock().unwrap_or_else(PoisonError::into_inner).pass()
            }));
            let panicked = passed.is_err();
            if panicked {
                log::error!("pool reactor: a pass panicked; closing its connections");
            }
            let finished = passed.unwrap_or(true);
            st = shared.lock();
            st.leading = false;
            if finished {
                // What `ReactorDone` does for a reactor thread.
                shared.reactor_gone(&mut st);
                if panicked {
                    // Poisoned: the connections go with the driver, now, not when the last
                    // worker ends.
                    let mut d = driver.lock().unwrap_or_else(PoisonError::into_inner);
                    let tokens = d.reactor.tokens();
                    for t in tokens {
                        d.reactor.remove(t);
                    }
                }
            } else {
                st.role_free_since = Some(Instant::now());
            }
            continue;
        }
        if st.has_sentry {
            st.idle_workers += 1;
            st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.idle_workers -= 1;
            woken = true;
            continue;
        }
        // The sentry: watches until it must act, then acts as any worker would.
        st.has_sentry = true;
        st.sentry_called = false;
        // (jobs popped, passes, jobs queued) at the last tick.
        let mut seen: Option<(u64, u64, usize)> = None;
        let stuck = loop {
            let now_seen = (st.popped, shared.passes.load(Ordering::SeqCst), st.queue.len());
            // The leader sleeps in epoll_wait and nothing ran since the last tick: sleep until
            // its next pass. Asleep, not merely leading: a pass that takes longer than a tick
            // before it queues its first request (a loaded machine preempts the leader; many
            // connections to accept) would otherwise look quiet too, and the sentry would
            // sleep until the *next* pass -- which never comes if the leader then runs the
            // first request it queued and that request blocks: the second waits in the queue
            // beside an idle worker (a test of a full queue hung a CI run this way).
            let mut quiet = st.leading
                && shared.asleep.load(Ordering::SeqCst)
                && st.queue.is_empty()
                && seen.is_some_and(|s| s.1 == now_seen.1);
            if quiet {
                // Say so, *then* look at the passes once more (the leader counts its pass,
                // *then* reads the flag; all SeqCst): either this sees the new pass, or the
                // leader sees the flag and wakes this thread (taking the lock first, which
                // this holds until it waits). The leader counts the pass after it leaves
                // epoll_wait, so a leader seen asleep above is either still before that count
                // (and will see the flag) or past it (and this sees the new count).
                shared.sentry_deep.store(true, Ordering::SeqCst);
                if shared.passes.load(Ordering::SeqCst) != now_seen.1 {
                    shared.sentry_deep.store(false, Ordering::SeqCst);
                    quiet = false;
                }
            }
            st = if quiet {
                let st = shared.sentry.wait(st).unwrap_or_else(PoisonError::into_inner);
                shared.sentry_deep.store(false, Ordering::SeqCst);
                seen = None;
                st
            } else {
                seen = Some(now_seen);
                shared.sentry.wait_timeout(st, SENTRY_TICK).unwrap_or_else(PoisonError::into_inner).0
            };
            if st.reactor_done {
                break false;
            }
            // The former leader runs a request that takes long: take the reactor from it.
            let stuck = !st.leading && st.role_free_since.is_some_and(|t| t.elapsed() >= SENTRY_TICK);
            // A request queued at the last tick is queued still (the queue is first in, first
            // out: fewer were taken since than waited then): it has waited a tick, so the
            // threads running requests do not keep up. Every follower helps. (Waiting for no
            // progress at all would leave a queue of requests of a millisecond or two each to
            // the one or two threads that lead in turn, while the others sleep: a /hello behind
            // them waited 100 ms under slowhttptest -X.)
            let waiting = !st.queue.is_empty() && seen.is_some_and(|s| st.popped < s.0 + s.2 as u64);
            if waiting {
                shared.work.notify_all();
            }
            if stuck || waiting {
                break stuck;
            }
        };
        st.has_sentry = false;
        take_role = stuck;
    }
}

/// A worker is about to run a request or lead (leader/followers): if no sentry watches and a
/// follower is idle, wakes one to be the sentry (once: `sentry_called` until one takes the
/// post). The follower woken takes the post before it looks at the queue (`lead_loop`). With a
/// sentry in place, as on a busy server, this costs nothing.
fn appoint_sentry(shared: &Shared, st: &mut State) {
    if !st.has_sentry && !st.sentry_called && st.idle_workers > 0 {
        st.sentry_called = true;
        shared.work.notify_one();
    }
}

/// What comes back from a worker.
enum Back<R, A, C> {
    /// An answer for the reactor to give the machine (the event loop's offloaded work).
    Answer(Token, R, A),
    /// The machine itself, which went to the worker with its request (the Pool): the worker
    /// gave it the answer and wrote what it could (`Driver::start` says why).
    Machine(Token, C),
    /// The job died without an answer: close the connection.
    Lost(Token),
}

/// Sends `Lost` if a job ends without sending its answer (a panic), so no connection waits
/// for ever.
struct LostGuard<R, A, C> {
    token: Token,
    tx: Option<Sender<Back<R, A, C>>>,
    shared: Arc<Shared>,
}

impl<R, A, C> Drop for LostGuard<R, A, C> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.shared.answers_waiting.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(Back::Lost(self.token));
            self.shared.wake_reactor();
        }
    }
}

/// One connection on the reactor.
struct Conn<C: ConnMachine> {
    /// Shared with a worker that holds the machine (`Driver::start`): the descriptor stays
    /// open while it writes, even if the reactor lets go of the connection meanwhile.
    stream: Arc<Stream>,
    /// `None` while a worker holds it (the Pool's requests: `Driver::start`).
    machine: Option<C>,
    /// Set by the reactor when the socket became readable (or the server began to stop) while
    /// a worker holds the machine: the worker then wakes the reactor when it gives it back.
    wanted: Arc<AtomicBool>,
    /// A request is out (queued or running).
    in_service: bool,
    /// Stalled by a full queue (in `Driver::stalled`).
    stalled: bool,
    /// The peer's EOF was read.
    eof: bool,
    /// Closed by the machine: our FIN is sent; we read and drop until the peer's EOF or this
    /// instant.
    linger: Option<(Instant, usize)>,
    /// On the event loop, a request whose answer waits for a reactor timer (`Later::At`):
    /// when, the request, and the work that makes the answer then.
    later: Option<Timed<C>>,
    /// The reactor pass (`Driver::passes`) that last advanced it: readiness collected before
    /// an advance in the same pass is stale (see `pass`).
    advanced_in: u64,
    /// The request out is the connection's last (`ConnMachine::ends_after`).
    last: bool,
    /// `TCP_NODELAY` is set (at its first request that is not its last: `advance`).
    nodelay: bool,
}

type Timed<C> = (Instant, <C as ConnMachine>::Request, Work<<C as ConnMachine>::Answer>);

impl<C: ConnMachine> AsFd for Conn<C> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// The reactor thread's state.
struct Driver<M: Machines> {
    run_on: RunOn,
    /// Worker threads started (the event loop's offload work runs on the loop without any).
    workers: usize,
    reactor: Reactor<Conn<M::Conn>>,
    machines: Arc<M>,
    shared: Arc<Shared>,
    answers: Receiver<Back<Req<M>, Ans<M>, M::Conn>>,
    answers_tx: Sender<Back<Req<M>, Ans<M>, M::Conn>>,
    /// Connections that could not hand out a request (queue full), first come first served.
    stalled: VecDeque<Token>,
    in_service: usize,
    stopping: bool,
    events: Vec<Event>,
    /// Its own listener (`Setup::listener`), until the stop.
    listener: Option<Listener>,
    /// The connections accepted from it inherit the protocol's socket options
    /// (`Machines::configure_listener`).
    inherited: bool,
    /// The listener is in the epoll set now.
    listening: bool,
    /// `accept` failed for want of descriptors or memory: no accepting until then.
    accept_paused_until: Option<Instant>,
    /// `Setup::shed`.
    shed: Option<Duration>,
    /// Requests refused by shedding (published as `State::shed`).
    shed_count: u64,
    /// Leader/followers (`Setup::lead`): a job is queued without waking a worker, since the
    /// leader runs it itself once its pass is over.
    lead: bool,
    /// Passes so far (`Conn::advanced_in`).
    passes: u64,
}

/// Marks the reactor gone, however its thread ends, and lets the workers finish.
struct ReactorDone<'a>(&'a Shared);

impl Drop for ReactorDone<'_> {
    fn drop(&mut self) {
        self.0.reactor_gone(&mut self.0.lock());
    }
}

impl<M: Machines> Driver<M> {
    /// The reactor thread's life: passes until the last connection is gone after the stop.
    fn run(&mut self) {
        let shared = Arc::clone(&self.shared);
        let _done = ReactorDone(&shared);
        while !self.pass() {}
    }

    /// One turn of the reactor: wait for readiness, a timer or a wake-up (not past the first
    /// deadline), then take in new connections and the workers' answers, serve every event,
    /// and publish the counters. `true` once it is over (stopped, and no connection left).
    fn pass(&mut self) -> bool {
        self.events.clear();
        let mut events = std::mem::take(&mut self.events);
        // No wait past the end of an accept pause (the listener is out of epoll meanwhile).
        let mut timeout = self.accept_paused_until.map(|t| t.saturating_duration_since(Instant::now()));
        // About to sleep: from here on, answers and connections wake us (`wake_reactor`).
        // Then look once more at what they publish, and only look at the sockets if some
        // came in meanwhile.
        self.shared.asleep.store(true, Ordering::SeqCst);
        // A leader with requests queued does not sleep either: it looks at the sockets
        // and runs one. (Asleep in epoll_wait, it would leave a queued request to whichever
        // worker finishes first: with 4 workers and 4 clients of 10 ms requests, 1 in 50
        // waited 7 ms more.)
        // And a listener taken out by a full queue goes back as soon as there is room (a
        // worker took a job since the last pass): new clients wait in the backlog till then.
        if self.shared.answers_waiting.load(Ordering::SeqCst) > 0
            || (!self.stalled.is_empty() && !self.queue_full())
            || (self.lead && self.shared.queued.load(Ordering::SeqCst) > 0)
            || self.listener_waits_for_room()
            || !self.shared.lock().incoming.is_empty()
        {
            timeout = Some(Duration::ZERO);
        }
        let reacted = self.reactor.react(timeout, &mut events);
        // Awake: whatever is published from now on is seen in this pass or the next
        // check above, without a wake-up.
        self.shared.asleep.store(false, Ordering::SeqCst);
        self.passes += 1;
        if self.lead {
            // The sentry's copy of the count (it cannot read the driver, which the leader holds).
            self.shared.passes.store(self.passes, Ordering::SeqCst);
            // The sentry went to sleep for good while the server was quiet; this pass may
            // start requests, which it must watch.
            if self.shared.sentry_deep.swap(false, Ordering::SeqCst) {
                // Under the lock: the sentry set the flag holding it, and waits releasing it.
                drop(self.shared.lock());
                self.shared.sentry.notify_one();
            }
        }
        if let Err(e) = reacted {
            // Only a bug (EBADF, EINVAL) makes epoll_wait fail: give up on the connections
            // (dropping them closes them) rather than spin.
            log::error!("pool reactor: epoll_wait failed: {e}; closing its connections");
            return true;
        }
        let now = Instant::now();
        let (incoming, closing, accepting) = {
            let mut st = self.shared.lock();
            st.taken = st.incoming.len();
            (std::mem::take(&mut st.incoming), st.closing, st.accepting)
        };
        for (stream, peer) in incoming {
            self.accept(stream, peer, now, false);
        }
        // Room appeared since the last pass, which left the queue full (so the listener is
        // out of epoll): the backlog takes its place in the line first, before stalled
        // connections and the answers' next requests fill the room again. Were it to wait
        // for a pass that ends with room, kept-alive clients that always have a request
        // ready would keep the queue full, and a client in the backlog would wait for as
        // long as they keep sending (8 of 32 clients saw no answer in 5 s). The Pool's one
        // reactor takes as many as there is room for (one a pass made a late client wait a
        // pass per client ahead of it: 0.8 s for the last of 32); an event loop takes its
        // usual one, leaving the rest to its siblings on the same listener.
        if accepting && !self.listening && self.accept_paused_until.is_none() && !self.queue_full() {
            let batch = if self.run_on == RunOn::Workers { self.shared.capacity } else { ACCEPT_BATCH };
            self.accept_waiting(now, batch);
        }
        // Answers first: they free workers' results and may let stalled connections on.
        while let Ok(back) = self.answers.try_recv() {
            self.shared.answers_waiting.fetch_sub(1, Ordering::SeqCst);
            match back {
                Back::Answer(token, request, answer) => {
                    self.answered(token, request, answer, now);
                    self.advance(token, now, false);
                }
                Back::Machine(token, mut machine) => {
                    if let Some(c) = self.reactor.get_mut(token) {
                        if self.stopping {
                            machine.stopping(now);
                        }
                        let last = machine.closes_after_output();
                        c.machine = Some(machine);
                        c.in_service = false;
                        self.in_service -= 1;
                        if last {
                            // Out of epoll before the last response is written, not
                            // between its write and the close: the client may read it and
                            // look (tests/hostile.rs counts descriptors) before a late
                            // epoll_ctl and close are done.
                            let _ = self.reactor.set_interest(token, Interest::NONE);
                        }
                        self.advance(token, now, false);
                    }
                }
                Back::Lost(token) => {
                    if let Some(c) = self.reactor.get_mut(token) {
                        c.in_service = false;
                        self.in_service -= 1;
                        match c.machine.as_mut() {
                            Some(m) => {
                                m.failed();
                                self.advance(token, now, false);
                            }
                            // The machine died with the job: nothing can answer now.
                            None => {
                                self.reactor.remove(token);
                            }
                        }
                    }
                }
            }
        }
        self.unstall(now);
        for &event in &events {
            match event {
                // Advanced already in this pass, after epoll_wait collected this readiness
                // (its machine came back, or a stalled one's turn came): that advance read
                // what the event reports, and level-triggered epoll reports again what is
                // left. Advancing again would only find nothing to read -- or, had it lent
                // the machine out again, take the socket out of epoll for a request it
                // has already read, and put it back when the machine returns: two
                // epoll_ctl calls per keep-alive request.
                Event::Io(token, _)
                    if self.reactor.get(token).is_some_and(|c| c.advanced_in == self.passes) => {}
                Event::Io(token, _) => self.advance(token, now, false),
                Event::Timer(token) => {
                    let Some(c) = self.reactor.get_mut(token) else { continue };
                    if c.linger.is_some() {
                        // The peer never sent its EOF: close now.
                        self.reactor.remove(token);
                        continue;
                    }
                    if c.in_service {
                        // The only timer of a connection in service is its later answer's
                        // (`Later::At`): run its work now, here on the loop.
                        if c.later.as_ref().is_some_and(|l| l.0 <= now)
                            && let Some((_, request, work)) = c.later.take()
                        {
                            let answer = work();
                            self.answered(token, request, answer, Instant::now());
                        }
                        self.advance(token, now, false);
                        continue;
                    }
                    if let Some(m) = c.machine.as_mut() {
                        m.timed_out(now);
                    }
                    self.advance(token, now, false);
                }
                Event::Woken => {}
                Event::Listener => self.accept_waiting(now, ACCEPT_BATCH),
            }
        }
        self.events = events;
        if closing && !self.stopping {
            self.stopping = true;
            // The listener goes first: the server has closed its own descriptor, and the
            // socket is closed (new clients refused) once every duplicate is.
            if let Some(l) = self.listener.take()
                && self.listening
            {
                self.reactor.unlisten(l.as_fd());
            }
            for token in self.reactor.tokens() {
                if let Some(c) = self.reactor.get_mut(token)
                    && c.linger.is_none()
                {
                    // A machine a worker holds is told when it comes back (and the worker
                    // reads `Shared::stopping` before it answers).
                    if let Some(m) = c.machine.as_mut() {
                        m.stopping(now);
                    }
                    self.advance(token, now, false);
                }
            }
        }
        self.publish();
        self.listen_while_room(accepting, Instant::now());
        self.stopping && self.reactor.len() == 0
    }

    /// The counters others read.
    fn publish(&self) {
        let mut st = self.shared.lock();
        st.connections = self.reactor.len();
        st.in_service = self.in_service;
        st.taken = 0;
        st.stalled = self.stalled.len();
        st.shed = self.shed_count;
        let room = st.room_waiters > 0 && self.shared.room(&mut st);
        drop(st);
        if room {
            self.shared.room.notify_all();
        }
    }

    /// Takes a connection onto the reactor. `own`: accepted here from its own listener
    /// (`accept_waiting`, with `accept4(SOCK_NONBLOCK)`), so it is non-blocking already and has
    /// the listener's socket options; one handed over by `submit` is given both here.
    fn accept(&mut self, stream: Stream, peer: Addr, now: Instant, own: bool) {
        // Non-blocking: the reactor must never wait on one client. If this fails the socket is
        // unusable (EBADF): drop it.
        if !own && let Err(e) = stream.set_nonblocking(true) {
            log::debug!("pool reactor: set_nonblocking failed for {peer}: {e}");
            return;
        }
        if !(own && self.inherited) {
            self.machines.configure(&stream);
        }
        let mut machine = self.machines.new_conn(peer.clone(), now);
        if self.stopping {
            machine.stopping(now);
        }
        let conn = Conn {
            stream: Arc::new(stream),
            machine: Some(machine),
            wanted: Arc::new(AtomicBool::new(false)),
            in_service: false,
            stalled: false,
            eof: false,
            linger: None,
            later: None,
            advanced_in: 0,
            last: false,
            nodelay: false,
        };
        // Registered with no interest: `advance` reads at once (the request is often there
        // already) and sets the interest from what the machine wants.
        match self.reactor.insert(conn, Interest::NONE) {
            Ok(token) => self.advance(token, now, false),
            Err((_, e)) => log::error!("pool reactor: cannot take a connection from {peer}: {e}"),
        }
    }

    /// Lets stalled connections hand out their requests while there is room.
    fn unstall(&mut self, now: Instant) {
        while let Some(&token) = self.stalled.front() {
            if self.queue_full() {
                break;
            }
            self.stalled.pop_front();
            if let Some(c) = self.reactor.get_mut(token) {
                c.stalled = false;
                self.advance(token, now, true);
            }
        }
    }

    /// Accepts what waits on the listener (a batch at most: level-triggered epoll reports the
    /// rest), while there is room. With connections stalled, the new ones join the back of
    /// their line (`advance`: accepted, not read).
    fn accept_waiting(&mut self, now: Instant, batch: usize) {
        for _ in 0..batch {
            if self.stopping || self.refuses_work() {
                return;
            }
            let Some(listener) = &self.listener else { return };
            match listener.accept_nonblocking() {
                Ok((stream, peer)) => {
                    if self.machines.verify(&peer) {
                        self.accept(stream, peer, now, true);
                    }
                }
                // Nothing left, or a sibling reactor took it: done.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up before we accepted, or a signal: next.
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {}
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin on a listener
                // that stays readable. Out of epoll for a moment (the server loop backs off the
                // same way); the connections wait in the backlog.
                Err(e) => {
                    log::error!("reactor: accept failed: {e}; backing off");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Keeps the listener in the epoll set exactly while this reactor should accept: told to,
    /// not stopping, not paused, and room (back-pressure: a full queue leaves new clients in
    /// the backlog, where a sibling reactor may take them).
    fn listen_while_room(&mut self, accepting: bool, now: Instant) {
        let Some(listener) = &self.listener else { return };
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
        }
        let want = accepting && !self.stopping && self.accept_paused_until.is_none() && !self.refuses_work();
        if want == self.listening {
            return;
        }
        if !want {
            self.reactor.unlisten(listener.as_fd());
            self.listening = false;
            return;
        }
        match self.reactor.listen(listener.as_fd(), true) {
            Ok(()) => self.listening = true,
            Err(e) => {
                // ENOMEM, ENOSPC: try again after a pause.
                log::error!("reactor: cannot watch the listener: {e}; retrying");
                self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
            }
        }
    }

    fn queue_full(&self) -> bool {
        self.shared.queued.load(Ordering::SeqCst) >= self.shared.capacity
    }

    /// Whether the listener is out of epoll only for a full queue that has room now: the pass
    /// that sees it puts it back (`listen_while_room`), so it must not sleep first.
    fn listener_waits_for_room(&self) -> bool {
        self.listener.is_some()
            && !self.listening
            && !self.stopping
            && self.accept_paused_until.is_none()
            && !self.queue_full()
            && self.shared.lock().accepting
    }

    /// Whether a full queue stops the accepting: unless shedding, which answers instead.
    fn refuses_work(&self) -> bool {
        self.shed.is_none() && self.queue_full()
    }

    /// Runs the service on a request that connection `token` handed out: where [`RunOn`]
    /// says. Its answer comes back through [`answered`](Driver::answered), now or later.
    fn start(&mut self, token: Token, request: Req<M>) {
        self.in_service += 1;
        match self.run_on {
            RunOn::Workers => self.lend(token, request),
            // On the loop thread: while the service runs, no other connection is served. That
            // is the event loop's one rule, and the service's to keep.
            RunOn::Loop => match self.machines.call(&request) {
                Later::Now(answer) => self.answered(token, request, answer, Instant::now()),
                // A reactor timer (the connection's slot deadline, which is free while it is in
                // service): `advance` arms it, the timer event runs the work.
                Later::At(at, work) => {
                    if let Some(c) = self.reactor.get_mut(token) {
                        c.later = Some((at, request, work));
                    }
                }
                Later::Offload(work) if self.workers > 0 => self.enqueue(token, request, move |_| work()),
                // No offload workers: the work runs here, blocking the loop (documented on
                // `EventLoop::offload`).
                Later::Offload(work) => {
                    let answer = work();
                    self.answered(token, request, answer, Instant::now());
                }
            },
        }
    }

    /// The answer to connection `token`'s request is here (from a worker, a timer, or the
    /// service on the loop): the machine gets it. The caller advances the connection.
    fn answered(&mut self, token: Token, request: Req<M>, answer: Ans<M>, now: Instant) {
        if let Some(c) = self.reactor.get_mut(token) {
            c.in_service = false;
            if let Some(m) = c.machine.as_mut() {
                m.respond(request, answer, now);
            }
            self.in_service -= 1;
        }
    }

    /// The Pool's hand-off: the request goes to a worker *with its connection's machine and a
    /// share of its socket*. The worker runs the service, gives the machine the answer and
    /// writes the response itself, without blocking (the socket is non-blocking: what the
    /// client does not take at once is left for the reactor, so a worker still never waits on
    /// a client). Then it sends the machine back, and wakes the reactor only if something is
    /// to be done at once: output left, a close, the next pipelined request, or an event the
    /// reactor saw meanwhile (`Conn::wanted`). Otherwise the reactor is woken by what comes
    /// next anyway, the client's next request (the socket stays in epoll meanwhile, readable
    /// interest), or the check timer (`AWAY_CHECK`). Measured reason: with the answer handed
    /// back, every request cost two thread wake-ups (reactor → worker → reactor) and two
    /// `epoll_ctl` (out of epoll in service, back after); docs/costs.md has the figures.
    fn lend(&mut self, token: Token, request: Req<M>) {
        let Some(c) = self.reactor.get_mut(token) else { return };
        let Some(mut machine) = c.machine.take() else { return };
        let stream = Arc::clone(&c.stream);
        let wanted = Arc::clone(&c.wanted);
        wanted.store(false, Ordering::SeqCst);
        let machines = Arc::clone(&self.machines);
        let guard = LostGuard { token, tx: Some(self.answers_tx.clone()), shared: Arc::clone(&self.shared) };
        let job: Job = Box::new(move || {
            let mut guard = guard;
            let mut request = request;
            let mut now;
            // Pipelined requests that came in with this one are complete too: answer them here,
            // so that their answers leave with this one in one write (the machine stops
            // parsing ahead once that output is large). No client is waited on.
            loop {
                let answer = machines.call_and_wait(&request);
                now = Instant::now();
                if guard.shared.stopping.load(Ordering::SeqCst) {
                    machine.stopping(now);
                }
                machine.respond(request, answer, now);
                match machine.next_request(now) {
                    Some(next) => request = next,
                    None => break,
                }
            }
            // A last response is the reactor's to write (see `closes_after_output`).
            if !machine.closes_after_output() {
                write_now(&stream, &mut machine, now);
            }
            let quiet = machine.wants() == Want::Read;
            // Let go of the socket before the reactor may: if the reactor closed the connection
            // and this share were the last, the descriptor would outlive the close that the
            // client has seen already.
            drop(stream);
            if let Some(tx) = guard.tx.take() {
                guard.shared.answers_waiting.fetch_add(1, Ordering::SeqCst);
                // Err: the reactor is gone, and the connection with it.
                let _ = tx.send(Back::Machine(token, machine));
                // After the send: a reactor that set `wanted` before this swap is woken; one
                // that sets it after sees `answers_waiting` before it sleeps.
                if wanted.swap(false, Ordering::SeqCst) || !quiet {
                    guard.shared.wake_reactor();
                }
            }
        });
        self.push_job(job);
    }

    /// Hands a request and the work that answers it to the workers.
    fn enqueue(
        &mut self,
        token: Token,
        request: Req<M>,
        work: impl FnOnce(&Req<M>) -> Ans<M> + Send + 'static,
    ) {
        let guard = LostGuard { token, tx: Some(self.answers_tx.clone()), shared: Arc::clone(&self.shared) };
        let job: Job = Box::new(move || {
            let mut guard = guard;
            let answer = work(&request);
            if let Some(tx) = guard.tx.take() {
                // Counted before it is sent, so that the count is never below what the channel
                // holds (the reactor counts down after each receive).
                guard.shared.answers_waiting.fetch_add(1, Ordering::SeqCst);
                // Err: the reactor is gone, and the connection with it.
                let _ = tx.send(Back::Answer(token, request, answer));
                guard.shared.wake_reactor();
            }
        });
        self.push_job(job);
    }

    fn push_job(&self, job: Job) {
        let mut st = self.shared.lock();
        st.queue.push_back(job);
        self.shared.queued.store(st.queue.len(), Ordering::SeqCst);
        // Leader/followers: the leader runs it after its pass, or the sentry calls the others.
        let idle = st.idle_workers > 0 && !self.lead;
        drop(st);
        if idle {
            self.shared.work.notify_one();
        }
    }

    /// Does everything connection `token` can do now without blocking, then sets its epoll
    /// interest and its timer from what its machine wants. `turn`: a stalled connection's turn
    /// has come (it goes before the others still stalled).
    fn advance(&mut self, token: Token, now: Instant, turn: bool) {
        let pass = self.passes;
        if let Some(c) = self.reactor.get_mut(token) {
            c.advanced_in = pass;
        }
        if let Some(c) = self.reactor.get_mut(token)
            && c.machine.is_none()
        {
            // A worker holds the machine (`lend`) and something happened meanwhile: the next
            // request is readable already, the check timer fired, or the server stops. Out of
            // epoll (level-triggered: it would be reported in a loop), no timer, and the worker
            // wakes us when it gives the machine back.
            c.wanted.store(true, Ordering::SeqCst);
            let _ = self.reactor.set_interest(token, Interest::NONE);
            self.reactor.set_deadline(token, None);
            return;
        }
        let mut budget = READ_BUDGET;
        let interest = loop {
            let Some(c) = self.reactor.get_mut(token) else { return };
            if c.stalled {
                // Its turn comes in `unstall`.
                return;
            }
            if let Some((until, drained)) = c.linger {
                match drain(&c.stream, drained) {
                    Some(n) => {
                        c.linger = Some((until, n));
                        break Interest::READ;
                    }
                    None => {
                        self.reactor.remove(token);
                        return;
                    }
                }
            }
            if c.in_service && c.machine.as_ref().is_none_or(|m| m.output().is_empty()) {
                // Lent to a worker with its machine: stay readable, so that the client's next
                // request wakes us (`lend`). Otherwise (the event loop): out of epoll until
                // the answer, so pipelined requests wait. (With output left, below: the
                // answers to earlier requests of a pipeline are written while a later one
                // waits for its timer or offload worker.)
                // (Unless no request can follow: `ends_after`.)
                break if c.machine.is_none() && !c.last { Interest::READ } else { Interest::NONE };
            }
            let Some(m) = c.machine.as_mut() else { return };
            let want = m.wants();
            // A pipelined request is ready behind output not yet written: answer it first, so
            // that the answers leave in one write (the machine keeps that output small) —
            // unless it would have to wait for a worker or behind stalled connections: then
            // write what is there now.
            let pipelined =
                want == Want::Service && !c.in_service && may_start(&self.shared, &self.stalled, turn);
            if !m.output().is_empty() && !pipelined {
                match (&*c.stream).write(m.output()) {
                    // A write of 0 bytes on a non-empty buffer: the socket cannot take more
                    // ever. Treat it as a failed write.
                    Ok(0) => m.failed(),
                    Ok(n) => m.sent(n, now),
                    // The send buffer is full (the client reads slowly, or not at all): wait
                    // for room, holding no thread. Its deadline (send rate) stays armed.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Interest::WRITE,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // EPIPE, ECONNRESET: the client is gone. Not an error of ours.
                    Err(_) => m.failed(),
                }
                continue;
            }
            if want == Want::Drain {
                self.close(token, now);
                return;
            }
            if want == Want::Close {
                // FIN after what was sent (an error means the peer is gone already), then close.
                let _ = c.stream.shutdown(Shutdown::Write);
                self.reactor.remove(token);
                return;
            }
            // Service (a complete request is ready), Read, or Write with nothing left to write.
            let full = self.shared.queued.load(Ordering::SeqCst) >= self.shared.capacity;
            if full && let Some(retry_after) = self.shed {
                // Load shedding: a complete request that finds the queue full is refused here,
                // on the reactor, at once (the refusal is written next time round the loop,
                // and the machine closes after it). A request still arriving is read on: it may
                // find room by the time it is whole, and reading it costs no worker.
                if let Some(request) = m.next_request(now) {
                    let answer = self.machines.shed(&request, retry_after);
                    m.respond(request, answer, now);
                    self.shed_count += 1;
                    continue;
                }
            } else if !may_start(&self.shared, &self.stalled, turn) {
                // Back-pressure: the queue is full (or others wait for it first). Stop reading
                // this connection until there is room, and suspend its deadline: waiting now
                // is the server's doing, not the client's.
                c.stalled = true;
                if turn {
                    self.stalled.push_front(token);
                } else {
                    self.stalled.push_back(token);
                }
                // Out of epoll while stalled (level-triggered: it would be reported in a loop) --
                // but for a leader (leader/followers), which runs a queued job after every
                // pass that leaves the queue full, so it cannot loop on the report; each pass
                // skips it (`c.stalled` above), and it costs no epoll_ctl to stall and unstall.
                if !self.lead {
                    let _ = self.reactor.set_interest(token, Interest::NONE);
                }
                self.reactor.set_deadline(token, None);
                return;
            }
            if let Some(request) = m.next_request(now) {
                c.in_service = true;
                c.last = m.ends_after(&request);
                if !c.last && !c.nodelay {
                    // The connection stays open, and an answer larger than the send buffer goes
                    // out in several writes: Nagle's algorithm would hold a later small one back
                    // until the client's (delayed) ACK, ~40 ms. The blocking driver sets it too.
                    // Not for a connection whose first request is its last (Connection: close):
                    // its close pushes what is queued at once, so the setsockopt would buy
                    // nothing. Failure only costs latency.
                    let _ = c.stream.set_nodelay(true);
                    c.nodelay = true;
                }
                self.start(token, request);
                continue;
            }
            if want == Want::Service {
                // Nothing to hand out and nothing out: the machine is waiting for something
                // else (its deadline). Reading now would buffer past its own back-pressure.
                break Interest::NONE;
            }
            if budget == 0 || c.eof {
                // Budget spent: level-triggered epoll reports the rest. EOF: nothing more will
                // come; the machine decides (its deadline, or Close).
                break if c.eof { Interest::NONE } else { Interest::READ };
            }
            let buf = m.read_buf();
            if buf.is_empty() {
                // The machine has no room for more (it should not want Read then): wait for its
                // deadline rather than read 0 bytes and take it for EOF.
                break Interest::NONE;
            }
            match (&*c.stream).read(buf) {
                Ok(n) => {
                    budget = budget.saturating_sub(n.max(1));
                    if n == 0 {
                        c.eof = true;
                    }
                    m.received(n, now);
                }
                // Spurious wake-up, or all that was there is read: wait for more.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    m.would_block();
                    break Interest::READ;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ECONNRESET and the like: the client is gone.
                Err(_) => m.failed(),
            }
        };
        let deadline = self.reactor.get(token).and_then(|c| match c.linger {
            Some((until, _)) => Some(until),
            // In service: no deadline of the client's, only a later answer's timer, if any.
            // Lent to a worker: a check, so that a machine given back quietly to a reactor
            // that sleeps gets its own deadline soon (`lend`).
            None if c.in_service && c.machine.is_none() => Some(now + AWAY_CHECK),
            None if c.in_service => c.later.as_ref().map(|l| l.0),
            None => c.machine.as_ref().and_then(|m| m.deadline()),
        });
        if let Err(e) = self.reactor.set_interest(token, interest) {
            // ENOMEM, or a descriptor epoll refuses: the connection cannot be watched; close it.
            log::error!("pool reactor: cannot watch a connection: {e}; closing it");
            self.reactor.remove(token);
            return;
        }
        self.reactor.set_deadline(token, deadline);
    }

    /// The machine is done: FIN, then linger for the peer's EOF (bounded), or close at once if
    /// it came already.
    fn close(&mut self, token: Token, now: Instant) {
        let Some(c) = self.reactor.get_mut(token) else { return };
        if c.eof {
            self.reactor.remove(token);
            return;
        }
        // FIN after what we sent; ENOTCONN means the peer is gone already: close.
        if c.stream.shutdown(Shutdown::Write).is_err() {
            self.reactor.remove(token);
            return;
        }
        c.linger = Some((now + LINGER, 0));
        self.advance(token, now, false);
    }
}

/// Whether a connection may hand out a complete request now: the queue has room and no stalled
/// connection is ahead of it (`turn`: its turn in `Driver::unstall` has come). Else it stalls.
/// (`stalled` and `shared` are the driver's, passed apart so that the caller may hold a
/// connection of the reactor meanwhile.)
fn may_start(shared: &Shared, stalled: &VecDeque<Token>, turn: bool) -> bool {
    shared.queued.load(Ordering::SeqCst) < shared.capacity && (turn || stalled.is_empty())
}

/// Writes what `machine` has to send until it is all out or the socket would block, without
/// ever waiting (a worker calls it: `Driver::lend`); what is left is the reactor's.
fn write_now<C: ConnMachine>(mut stream: &Stream, machine: &mut C, now: Instant) {
    while !machine.output().is_empty() {
        match stream.write(machine.output()) {
            // As in `advance`: 0 bytes on a non-empty buffer is a socket that takes no more.
            Ok(0) => machine.failed(),
            Ok(n) => machine.sent(n, now),
            // The client reads slowly (or not now): the reactor waits for room, not a worker.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EPIPE, ECONNRESET: the client is gone; the machine says Close.
            Err(_) => machine.failed(),
        }
    }
}

/// Reads and drops what a lingering connection sends; `None` when it is over (EOF, an error,
/// or too much), else the total drained.
fn drain(mut stream: &Stream, mut drained: usize) -> Option<usize> {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                drained += n;
                if drained > LINGER_BYTES {
                    return None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests;
