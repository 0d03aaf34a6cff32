//! [`Threading`]: a thread per connection. The design and its trade-off are on the type's
//! docs.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{Concurrency, Dispatcher};
use crate::handler::{Connection, RequestHandler};

/// One thread per connection (Python's `ThreadingMixIn`).
///
/// # Configure this (consuming setters)
/// [`new`](Threading::new) (Python's defaults), [`block_on_close`](Threading::block_on_close)
/// (true), [`daemon_threads`](Threading::daemon_threads) (false),
/// [`max_threads`](Threading::max_threads) (no cap), [`stack_size`](Threading::stack_size).
///
/// # Call this
/// [`active_threads`](Threading::active_threads), [`tracked_threads`](Threading::tracked_threads)
/// and [`threads_started`](Threading::threads_started), through
/// [`Server::concurrency`](crate::Server::concurrency).
///
/// # The trade-off
/// Threads share the process: one address space, one copy of the handler, one set of open files.
/// That makes them cheap to start (tens of microseconds) and lets handlers share caches and
/// counters, but every shared thing needs a lock, and a bug in one thread (memory corruption,
/// `std::process::exit`) takes the whole server down. A panic does *not*: it is caught at the
/// request boundary ([`Dispatcher::run`](crate::Dispatcher::run)).
///
/// Unlike CPython, Rust has no global interpreter lock: CPU-bound handlers on threads run in
/// parallel on every core.
///
/// Each thread costs a kernel task and a stack. Without a cap, a flood of slow clients makes a
/// thread each; [`Threading::max_threads`] bounds that (the accept loop then waits for a thread
/// to finish, and further clients wait in the listen backlog). The bound is on OS threads, not
/// just on running handlers: a thread gives up its slot as the last thing it does, but it still
/// exists for a moment afterwards (thread-local destructors, stack unmapping), so before
/// starting a new thread at the cap the accept loop *joins* the threads that gave up their
/// slots. Without that, `/proc/PID/task` showed `max + 1` request threads under a burst
/// (tests/bounds.rs).
///
/// # What one connection costs here, and what was cut
/// Per connection the accept thread takes a slot (a counter under one mutex), starts the thread
/// and keeps its `JoinHandle`, which `service_actions` joins once the thread has finished:
/// `server_close` needs the handles, since only a join says that a thread is *gone* and not
/// just done with its request. The thread gives its slot back when it ends, and signals the
/// condition variable only when someone waits on it (the accept loop, at the cap): std's
/// `notify_all` is a system call even when nobody waits. The stack is
/// [`Threading::DEFAULT_STACK_SIZE`], not Rust's 2 MiB, for the reason given there: that one
/// change is most of the difference to a bare `std::thread::spawn` server (docs/benchmarks.md,
/// "A connection per request").
/// Joining in batches instead of on every pass, and not naming the threads, measured the
/// same within the noise, so the simpler code and the names stay.
///
/// *When to pick it:* handlers that mostly wait (on a database, a disk, another service) or
/// burn CPU on every core, with a moderate number of clients; when handlers want to share a
/// cache or a connection pool in memory. Prefer a [`Pool`](super::Pool) when the load is high
/// or unknown (its capacity is fixed), and [`Forking`](super::Forking) when a bad request
/// must not be able to take the others down.
///
/// # Python's names, Python's defaults
/// * `block_on_close = true`: `server_close` joins every request thread, so in-flight requests
///   finish before the server is gone.
/// * `daemon_threads = false`: with `true`, request threads are not tracked and `server_close`
///   does not wait for them (they die with the process).
/// * Python keeps every thread object until close, growing without bound on a long-running
///   server (bpo-37193). Here finished threads are joined and dropped in `service_actions`.
#[derive(Debug)]
pub struct Threading {
    block_on_close: bool,
    daemon_threads: bool,
    max_threads: Option<usize>,
    stack_size: Option<usize>,
    threads: Vec<(u64, JoinHandle<()>)>,
    active: Arc<Active>,
    started: u64,
}

/// Count of running request threads, with a condition variable to wait for a change.
#[derive(Debug, Default)]
struct Active {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Request threads holding a slot (daemon or not): what `max_threads` bounds.
    running: usize,
    /// Someone waits on `changed`: only then does a thread that ends signal it.
    waiting: bool,
    /// Numbers of capped, tracked threads that have given up their slot but may not have
    /// exited yet: the accept loop joins them before it starts another (see the type's docs).
    done: Vec<u64>,
}

impl Active {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits on the condition variable until `until` holds, telling the threads that end to
    /// signal it meanwhile.
    fn wait_until(&self, mut until: impl FnMut(&State) -> bool) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        while !until(&state) {
            state.waiting = true;
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.waiting = false;
        state
    }
}

/// A request thread's slot, given back when the thread ends, however it ends.
struct Slot {
    active: Arc<Active>,
    /// With a number, a capped accept loop will join this thread (see the type's docs).
    number: Option<u64>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.active.lock();
        state.running -= 1;
        if let Some(n) = self.number {
            state.done.push(n);
        }
        // std's notify_all is a futex system call even when nobody waits; nearly always
        // nobody does (only the accept loop waits, and only at the cap).
        if state.waiting {
            self.active.changed.notify_all();
        }
    }
}

impl Default for Threading {
    fn default() -> Self {
        Threading::new()
    }
}

impl Threading {
    /// The stack of a request thread unless [`Threading::stack_size`] or `RUST_MIN_STACK` says
    /// otherwise: 256 KiB, an eighth of Rust's default 2 MiB.
    ///
    /// Why not Rust's default: glibc keeps the stacks of exited threads for reuse, up to 40 MiB in
    /// all (its `glibc.pthread.stack_cache_size` tunable). With 2 MiB stacks that is 20 threads; a
    /// server with more connections in flight than that unmaps stacks and maps fresh ones, whose
    /// pages fault in again, on every connection (docs/benchmarks.md, "A connection per
    /// request", measures it); 160 stacks of 256 KiB fit in the cache. 256 KiB is
    /// still far more than a request needs (the HTTP layer keeps its buffers on the heap) and more
    /// than musl's default of 128 KiB; a handler that recurses deeply or keeps big arrays on the
    /// stack should ask for more, with [`Threading::stack_size`] or, without a code change, with
    /// the variable every Rust program reads, `RUST_MIN_STACK=2097152`.
    pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

    /// Python's defaults: `block_on_close = true`, `daemon_threads = false`, no thread cap.
    pub fn new() -> Threading {
        Threading {
            block_on_close: true,
            daemon_threads: false,
            max_threads: None,
            stack_size: None,
            threads: Vec::new(),
            active: Arc::new(Active::default()),
            started: 0,
        }
    }

    /// Whether `server_close` waits for request threads (Python's `block_on_close`, default
    /// `true`).
    pub fn block_on_close(mut self, block: bool) -> Threading {
        self.block_on_close = block;
        self
    }

    /// Don't track request threads at all (Python's `daemon_threads`, default `false`).
    /// `server_close` then never waits for them.
    pub fn daemon_threads(mut self, daemon: bool) -> Threading {
        self.daemon_threads = daemon;
        self
    }

    /// At most `max` request threads at once (default: no limit, as in Python). At the cap the
    /// accept loop waits for a thread to finish. `max` is raised to 1 if 0.
    pub fn max_threads(mut self, max: usize) -> Threading {
        self.max_threads = Some(max.max(1));
        self
    }

    /// The stack size of request threads, in bytes (default: [`Threading::DEFAULT_STACK_SIZE`], 256 KiB,
    /// or `RUST_MIN_STACK` when that is set).
    pub fn stack_size(mut self, bytes: usize) -> Threading {
        self.stack_size = Some(bytes);
        self
    }

    /// Request threads running right now.
    pub fn active_threads(&self) -> usize {
        self.active.lock().running
    }

    /// Request threads whose handles are kept for joining (finished ones are dropped by
    /// `service_actions`; daemon threads are never kept).
    pub fn tracked_threads(&self) -> usize {
        self.threads.len()
    }

    /// Request threads started since the server was created.
    pub fn threads_started(&self) -> u64 {
        self.started
    }

    /// Joins the threads that have finished and forgets them, so the list does not grow.
    fn join_finished(&mut self) {
        let mut i = 0;
        while i < self.threads.len() {
            if self.threads[i].1.is_finished() {
                // The thread has ended, so join returns at once. Its handler's panics were caught
                // inside Dispatcher::run; an Err here could only come from the thread's own
                // bookkeeping, and there is nothing to do about it but go on.
                let _ = self.threads.swap_remove(i).1.join();
            } else {
                i += 1;
            }
        }
    }

    /// Joins the tracked threads that have given up their slot: each has finished its request
    /// and is exiting, so each join waits microseconds at most. Afterwards no more OS threads
    /// exist than slots are taken.
    fn join_done(&mut self) {
        let done = std::mem::take(&mut self.active.lock().done);
        for n in done {
            // Not found: service_actions joined it already.
            if let Some(i) = self.threads.iter().position(|(m, _)| *m == n) {
                let _ = self.threads.swap_remove(i).1.join();
            }
        }
    }
}

impl Concurrency for Threading {
    fn name(&self) -> &'static str {
        "threading"
    }

    fn process_request<H: RequestHandler>(&mut self, conn: Connection, dispatcher: &Dispatcher<H>) {
        let tracked = !self.daemon_threads;
        {
            let mut state = match self.max_threads {
                // At the cap, wait here: the accept loop stops accepting, and new clients queue
                // in the kernel's listen backlog instead of each getting a thread.
                Some(max) => self.active.wait_until(|s| s.running < max),
                None => self.active.lock(),
            };
            state.running += 1;
        }
        if self.max_threads.is_some() {
            self.join_done();
        }
        self.started += 1;
        // The slot moves into the thread. If the spawn fails the closure is dropped unrun, and
        // the slot with it, so the count stays right. Only a capped, tracked thread reports its
        // number: nobody else would drain the list.
        let slot = Slot {
            active: Arc::clone(&self.active),
            number: (self.max_threads.is_some() && tracked).then_some(self.started),
        };
        let dispatcher = dispatcher.clone();
        // Named, so that `top -H`, a debugger or /proc/PID/task/*/comm says which thread is a
        // request thread, and which one (its number is `threads_started` at its start).
        let mut builder = std::thread::Builder::new().name(format!("request-{}", self.started));
        // None: RUST_MIN_STACK is set, and std applies it (see Threading::DEFAULT_STACK_SIZE).
        if let Some(bytes) = self.stack_size.or_else(default_stack_size) {
            builder = builder.stack_size(bytes);
        }
        let spawned = builder.spawn(move || {
            let _slot = slot;
            dispatcher.run(conn);
        });
        match spawned {
            Ok(handle) if tracked => self.threads.push((self.started, handle)),
            // A daemon thread is detached: dropping the handle does not stop the thread.
            Ok(_) => {}
            // EAGAIN: the process or user has hit its thread limit (ulimit -u, threads-max) or is
            // out of memory. The connection is closed with the dropped closure; the client sees
            // a reset and may retry. Nothing better can be done without a thread.
            Err(e) => log::error!("cannot start a request thread, dropping the connection: {e}"),
        }
    }

    fn service_actions(&mut self) {
        self.join_finished();
    }

    fn server_close(&mut self) {
        if self.block_on_close {
            // Wait for every in-flight request to finish: this is what makes a SIGTERM graceful.
            // Joining each handle waits for the thread to be gone, not just its request done.
            for (_, handle) in self.threads.drain(..) {
                let _ = handle.join();
            }
        } else {
            // Detach them; they finish on their own, or die when the process exits.
            self.threads.clear();
        }
    }
}

/// [`Threading::DEFAULT_STACK_SIZE`], unless the user set `RUST_MIN_STACK`: then `None`, and std gives the
/// thread the size it names, as it does for every thread a Rust program starts. Read once.
fn default_stack_size() -> Option<usize> {
    static DEFAULT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *DEFAULT
        .get_or_init(|| std::env::var_os("RUST_MIN_STACK").is_none().then_some(Threading::DEFAULT_STACK_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pythons() {
        let t = Threading::new();
        assert!(t.block_on_close);
        assert!(!t.daemon_threads);
        assert_eq!(t.max_threads, None);
        assert_eq!(Threading::new().max_threads(0).max_threads, Some(1));
    }
}
