//! Stopping a server: [`ShutdownHandle`] and [`shutdown_on_signals`]. The design is on their
//! docs.

use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::sys::{self, Waker};

static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

/// The id of the server [`shutdown_on_signals`] stops (0: none): the one whose handle turns a
/// caught signal into a shutdown request.
static SIGNAL_TARGET: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The id of the server whose request handler this thread is running right now (0: none).
    static IN_HANDLER_OF: Cell<u64> = const { Cell::new(0) };
}

/// Marks the current thread as running a request of server `id` until dropped.
pub(crate) struct HandlerScope {
    previous: u64,
}

impl HandlerScope {
    pub(crate) fn enter(id: u64) -> HandlerScope {
        let previous = IN_HANDLER_OF.with(|c| c.replace(id));
        HandlerScope { previous }
    }
}

impl Drop for HandlerScope {
    fn drop(&mut self) {
        IN_HANDLER_OF.with(|c| c.set(self.previous));
    }
}

#[derive(Debug)]
struct Inner {
    id: u64,
    /// The process that owns the server. A forked child has a copy of this handle whose flag
    /// nobody reads; using it there is refused.
    owner_pid: u32,
    requested: AtomicBool,
    serving: Mutex<bool>,
    stopped: Condvar,
    /// Wakes `serve_forever`'s poll when a shutdown is requested.
    waker: Waker,
    /// The *stop broadcast*: a pipe nobody writes to. Requesting a shutdown closes the write
    /// end, and every `poll` on the read end, in this process or in a forked child (which
    /// closed its inherited copy of the write end), sees POLLHUP. Closing a pipe is a broadcast
    /// to any number of waiters; writing a byte would wake just one of them.
    stop_read: OwnedFd,
    stop_write: Mutex<Option<OwnedFd>>,
}

/// A cloneable, `Send` handle that stops a running [`Server`](crate::Server).
///
/// # Call this
/// Get one from [`Server::shutdown_handle`](crate::Server::shutdown_handle) before calling
/// `serve_forever`, move it to another thread or to [`shutdown_on_signals`], and call
/// [`shutdown`](ShutdownHandle::shutdown) (stop and wait) or
/// [`request_shutdown`](ShutdownHandle::request_shutdown) (stop, don't wait).
///
/// # Why it looks the way it does
/// Python's `BaseServer.shutdown()` sets a flag that `serve_forever` checks once per
/// `poll_interval`, then waits for the loop to exit. Two of its sharp edges are filed off here:
///
/// * **Latency.** The handle also wakes an *eventfd* (the self-pipe trick, one descriptor)
///   that `serve_forever` polls beside the listener, so the loop wakes at once instead of up to
///   half a second later.
/// * **Deadlock.** Called from a handler of the same server, Python's `shutdown()` waits for a
///   loop that is waiting for the handler. Here the wait is refused with
///   [`Error::ShutdownFromHandler`](crate::Error::ShutdownFromHandler) (the stop is still
///   requested).
///
/// # Signals
/// A signal handler may only call async-signal-safe functions: no locks, no allocation, no
/// logging. So the handler of [`shutdown_on_signals`] only records the signal and wakes the
/// eventfd above; the signal becomes a shutdown request (logged, the stop broadcast hung up) in
/// ordinary code, the next time anyone asks [`is_shutdown_requested`](Self::is_shutdown_requested),
/// which `serve_forever` does as soon as the eventfd wakes it.
///
/// A shutdown request is sticky: once made, `serve_forever` returns at once, even if it had not
/// started yet (so a Ctrl-C that arrives during start-up is not lost).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

impl ShutdownHandle {
    pub(crate) fn new() -> Result<ShutdownHandle> {
        let waker = Waker::new()?;
        // Non-blocking so that a poll on it can never turn into a blocking read; close-on-exec
        // so that a child started with exec does not inherit it.
        let (stop_read, stop_write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(ShutdownHandle {
            inner: Arc::new(Inner {
                id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
                owner_pid: std::process::id(),
                requested: AtomicBool::new(false),
                serving: Mutex::new(false),
                stopped: Condvar::new(),
                waker,
                stop_read,
                stop_write: Mutex::new(Some(stop_write)),
            }),
        })
    }

    /// Asks the server to stop and returns at once. `serve_forever` notices within microseconds
    /// (the waker wakes its poll), stops accepting, and returns; in-flight requests are
    /// finished by `server_close`. Safe to call from a request handler.
    ///
    /// # Errors
    /// [`Error::NotServerProcess`] in a forked child: its copy of the server is not the one
    /// that is serving.
    pub fn request_shutdown(&self) -> Result<()> {
        if std::process::id() != self.inner.owner_pid {
            return Err(Error::NotServerProcess);
        }
        self.inner.requested.store(true, Ordering::SeqCst);
        // Dropping the write end hangs up the stop broadcast (see `is_stopping`).
        drop(lock(&self.inner.stop_write).take());
        self.inner.waker.wake();
        Ok(())
    }

    /// Python's `shutdown()`: asks the server to stop and waits until `serve_forever` has
    /// returned. Returns at once if the server is not serving.
    ///
    /// # Errors
    /// * [`Error::ShutdownFromHandler`] when called from inside a request handler of this same
    ///   server: the stop is requested, but waiting would wait for ourselves.
    /// * [`Error::NotServerProcess`] in a forked child.
    pub fn shutdown(&self) -> Result<()> {
        self.request_shutdown()?;
        if IN_HANDLER_OF.with(|c| c.get()) == self.inner.id {
            return Err(Error::ShutdownFromHandler);
        }
        let mut serving = lock(&self.inner.serving);
        while *serving {
            serving = self.inner.stopped.wait(serving).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Ok(())
    }

    /// Whether a stop has been requested.
    ///
    /// For the server of [`shutdown_on_signals`], a signal its handler caught counts too: the
    /// first call to see it makes the request, here in ordinary code, where logging and locks
    /// are allowed (Python's interpreter runs its signal handlers the same way, between
    /// bytecodes, after the C-level handler has only set a flag).
    pub fn is_shutdown_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst) || self.take_caught_signal()
    }

    /// Turns a signal caught for this server into a shutdown request. `false`: nothing caught,
    /// or this is not the server that `shutdown_on_signals` stops.
    fn take_caught_signal(&self) -> bool {
        if SIGNAL_TARGET.load(Ordering::Relaxed) != self.inner.id {
            return false;
        }
        let Some(signal) = sys::take_shutdown_signal() else { return false };
        // Err in a forked child that copied a signal caught just before its fork: the parent
        // is the one that stops, and this child's answer "stopping" is true all the same.
        if self.request_shutdown().is_ok() {
            log::info!(
                "{signal}: stopping: no new connections, finishing requests in flight \
                 (send it again to exit at once)"
            );
        }
        true
    }

    /// Whether the server is stopping: a shutdown was requested here, or, in a forked child,
    /// the parent has requested one since the fork. A handler waiting for more input from an
    /// idle client (HTTP keep-alive) checks this to let go of the connection, so that a graceful
    /// stop does not wait out the idle timeout.
    ///
    /// "Forked child" means one forked by this crate's strategies ([`Forking`](crate::Forking),
    /// [`Prefork`](crate::Prefork)): the process id is remembered per thread to save a system
    /// call per request, and those fork paths refresh it in the child.
    pub fn is_stopping(&self) -> bool {
        if self.is_shutdown_requested() {
            return true;
        }
        // Who::cached, not std::process::id: that is a getpid system call, and a keep-alive
        // connection asks this once per request. The crate's fork paths refresh the cache.
        if crate::trace::Who::cached().pid == self.inner.owner_pid {
            // In the server's own process the flag is the truth; no system call needed.
            return false;
        }
        // A forked child: its copy of the flag is never set; the broadcast pipe tells instead.
        sys::poll_one(self.inner.stop_read.as_fd(), PollFlags::POLLIN, Some(std::time::Duration::ZERO))
            .is_ok_and(|r| r.contains(PollFlags::POLLHUP))
    }

    /// In a freshly forked child: close this process's copy of the stop broadcast's write end,
    /// so that the parent closing its own copy hangs up the pipe for the child too.
    pub(crate) fn forget_write_end_in_child(&self) {
        // try_lock: a lock held at the instant of the fork by a thread that does not exist
        // here stays locked forever; then a shutdown was being requested anyway.
        if let Ok(mut w) = self.inner.stop_write.try_lock() {
            drop(w.take());
        }
    }

    pub(crate) fn server_id(&self) -> u64 {
        self.inner.id
    }

    /// The descriptor that becomes readable when a shutdown is requested.
    pub(crate) fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.waker.as_fd()
    }

    /// Clears a wake-up so that the next poll blocks again; the flag says what it was for.
    pub(crate) fn drain_wake(&self) {
        self.inner.waker.drain();
    }

    pub(crate) fn set_serving(&self, serving: bool) {
        *lock(&self.inner.serving) = serving;
        if !serving {
            self.inner.stopped.notify_all();
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the bool inside is
/// still meaningful, so recover it rather than spreading the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes SIGINT (Ctrl-C) and SIGTERM (`kill`) stop the server gracefully: stop accepting,
/// finish in-flight requests in `server_close`, exit normally. A *second* signal means "now":
/// the process exits at once with status 128 + signal number, as a shell reports a kill.
///
/// Call it early in `main`, before serving; a signal that arrives before `serve_forever` starts
/// is kept, and `serve_forever` then returns at once. One server per process is stopped this
/// way: a second call moves the signals to its server.
///
/// # How
/// Python's `signal.set_wakeup_fd` design. A signal handler, installed with `sigaction`, does
/// only what is async-signal-safe: it records the signal in an atomic and writes to the
/// handle's eventfd, which wakes `serve_forever`'s `poll`. `serve_forever` then asks
/// [`ShutdownHandle::is_shutdown_requested`], which turns the recorded signal into a
/// shutdown request, in ordinary code, where it may log and lock. The second signal is
/// handled in the handler itself, with `_exit`, since nobody may be polling by then (the
/// server may be waiting for its requests in `server_close`).
///
/// Why not a thread that waits in `sigwait(2)`, as this function did before: the process would
/// have two threads, and in a forking server every `fork` from a multi-threaded process costs
/// more (glibc locks its malloc arenas around it, and each child faults in more pages:
/// docs/06-fork-in-numbers.md). Why not a `signalfd`, as [`Prefork`](crate::Prefork)'s master
/// uses: it needs the signals blocked in every thread, and the second signal would wait for a
/// loop that reads the descriptor, which `server_close` is not.
///
/// A process forked from this one (the [`Forking`](crate::Forking) children) inherits the
/// handler. There it does nothing of the above: it sees it is not in the process that
/// installed it, puts back the default action and re-raises the signal, so a child still dies
/// of SIGTERM.
///
/// # Errors
/// If a handler cannot be installed.
pub fn shutdown_on_signals(handle: ShutdownHandle) -> Result<()> {
    // Kept for the rest of the process (leaked on purpose, one per call): the handler may write
    // to its eventfd at any moment, and a closed descriptor's number could be reused.
    let handle: &'static ShutdownHandle = Box::leak(Box::new(handle));
    SIGNAL_TARGET.store(handle.inner.id, Ordering::Relaxed);
    sys::catch_shutdown_signals(&[Signal::SIGINT, Signal::SIGTERM], handle.wake_fd())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_of_a_server_that_is_not_serving_returns_at_once() {
        let h = ShutdownHandle::new().unwrap();
        assert!(!h.is_shutdown_requested());
        h.shutdown().unwrap();
        assert!(h.is_shutdown_requested());
    }

    #[test]
    fn shutdown_from_a_handler_of_the_same_server_is_refused_not_deadlocked() {
        let h = ShutdownHandle::new().unwrap();
        h.set_serving(true);
        let scope = HandlerScope::enter(h.server_id());
        assert!(matches!(h.shutdown(), Err(Error::ShutdownFromHandler)));
        assert!(h.is_shutdown_requested());
        drop(scope);
        h.set_serving(false);
    }

    #[test]
    fn a_shutdown_request_hangs_up_the_stop_broadcast() {
        let h = ShutdownHandle::new().unwrap();
        let hung_up = |h: &ShutdownHandle| {
            let mut fds = [nix::poll::PollFd::new(h.inner.stop_read.as_fd(), nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap();
            fds[0].revents().unwrap().contains(nix::poll::PollFlags::POLLHUP)
        };
        assert!(!hung_up(&h) && !h.is_stopping());
        h.request_shutdown().unwrap();
        assert!(hung_up(&h) && h.is_stopping());
    }

    #[test]
    fn shutdown_waits_until_serving_ends() {
        let h = ShutdownHandle::new().unwrap();
        h.set_serving(true);
        let h2 = h.clone();
        let waiter = std::thread::spawn(move || h2.shutdown());
        // The waiter cannot finish while serving is true; ending it releases the waiter.
        while !h.is_shutdown_requested() {
            std::thread::yield_now();
        }
        h.drain_wake();
        h.set_serving(false);
        waiter.join().unwrap().unwrap();
    }
}
