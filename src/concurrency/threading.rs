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
/// Each thread costs a kernel task and a stack (2 MiB of address space by default, of which only
/// the touched pages use memory). Without a cap, a flood of slow clients makes a thread each;
/// [`Threading::max_threads`] bounds that (the accept loop then waits for a thread to finish,
/// and further clients wait in the listen backlog). The bound is on OS threads, not just on
/// running handlers: a thread gives up its slot as the last thing it does, but it still exists
/// for a moment afterwards (thread-local destructors, stack unmapping), so before starting a new
/// thread at the cap the accept loop *joins* the threads that gave up their slots. Without that,
/// `/proc/PID/task` showed `max + 1` request threads under a burst (tests/bounds.rs).
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

/// Count of running request threads, with a condition variable to wait for a free slot.
#[derive(Debug, Default)]
struct Active {
    count: Mutex<usize>,
    changed: Condvar,
    /// Numbers of tracked threads that have given up their slot but may not have exited yet.
    done: Mutex<Vec<u64>>,
}

impl Active {
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Decrements the active count when a request thread ends, however it ends. With a thread
/// number, the thread is tracked and a capped accept loop will join it (see the module docs).
struct Slot(Arc<Active>, Option<u64>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(n) = self.1 {
            self.0.done.lock().unwrap_or_else(|p| p.into_inner()).push(n);
        }
        *self.0.lock() -= 1;
        self.0.changed.notify_all();
    }
}

impl Default for Threading {
    fn default() -> Self {
        Threading::new()
    }
}

impl Threading {
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

    /// The stack size of request threads, in bytes (default: Rust's, 2 MiB).
    pub fn stack_size(mut self, bytes: usize) -> Threading {
        self.stack_size = Some(bytes);
        self
    }

    /// Request threads running right now.
    pub fn active_threads(&self) -> usize {
        *self.active.lock()
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
        let done = std::mem::take(&mut *self.active.done.lock().unwrap_or_else(|p| p.into_inner()));
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
        {
            let mut count = self.active.lock();
            if let Some(max) = self.max_threads {
                // At the cap, wait here: the accept loop stops accepting, and new clients queue
                // in the kernel's listen backlog instead of each getting a thread.
                while *count >= max {
                    count = self.active.changed.wait(count).unwrap_or_else(|p| p.into_inner());
                }
            }
            *count += 1;
        }
        if self.max_threads.is_some() {
            self.join_done();
        }
        self.started += 1;
        // Only a capped, tracked thread reports itself done: nobody else would drain the list.
        let tracked = (self.max_threads.is_some() && !self.daemon_threads).then_some(self.started);
        // The slot moves into the thread. If the spawn fails the closure is dropped unrun, and
        // the slot with it, so the count stays right.
        let slot = Slot(Arc::clone(&self.active), tracked);
        let dispatcher = dispatcher.clone();
        let mut builder = std::thread::Builder::new().name(format!("request-{}", self.started));
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let spawned = builder.spawn(move || {
            let _slot = slot;
            dispatcher.run(conn);
        });
        match spawned {
            Ok(handle) if !self.daemon_threads => self.threads.push((self.started, handle)),
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
            for (_, handle) in self.threads.drain(..) {
                let _ = handle.join();
            }
        } else {
            // Detach them; they finish on their own, or die when the process exits.
            self.threads.clear();
        }
    }
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
