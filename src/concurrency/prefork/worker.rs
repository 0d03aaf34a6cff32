//! A worker's life after the fork: the child preamble, a `signals` thread for SIGTERM, its own
//! [`Server`](crate::Server), `_exit` (see [`Prefork`](crate::Prefork), "The workers").

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::RawFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use crate::concurrency::{Concurrency, EventLoop, Pool, Sequential};
use crate::error::Result;
use crate::handler::RequestHandler;
use crate::server::ServerBuilder;
use crate::sys;
use crate::trace::Who;
use crate::transport::{Addr, Listener};

/// Everything a new worker needs, copied out of the master's state before the fork, so that
/// the child reads plain values and never the master's structures.
pub(super) struct WorkerSetup {
    pub(super) master: Pid,
    pub(super) addr: Addr,
    /// The shared listener's descriptor; `None` in `SO_REUSEPORT` mode.
    pub(super) listener_fd: Option<RawFd>,
    /// Master descriptors the worker must close (-1: none).
    pub(super) close_fds: [RawFd; 2],
    pub(super) worker_mask: SigSet,
    pub(super) threads: Option<usize>,
    /// `Some(offload)`: the worker is one event loop (`Prefork::event_loop`).
    pub(super) event_loop: Option<usize>,
    pub(super) builder: ServerBuilder,
    pub(super) reuse_port: bool,
}

/// A worker's whole life, in the child [`sys::fork_child`] made: returns the exit status
/// (0 after a graceful stop, 1 after an error), which fork_child hands to `_exit`.
pub(super) fn main<H: RequestHandler>(setup: WorkerSetup, handler: Arc<H>) -> i32 {
    match worker(setup, handler) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("worker {}: {e}", Who::current());
            1
        }
    }
}

fn worker<H: RequestHandler>(setup: WorkerSetup, handler: Arc<H>) -> Result<()> {
    // 1. No orphans: the kernel sends us SIGTERM (a graceful stop) when the master dies. The
    //    master may have died between the fork and this call, so check once by hand.
    if !sys::die_with_parent(setup.master)? {
        log::warn!("worker {}: the master is gone before start-up; exiting", Who::current());
        return Ok(());
    }
    // 2. The master's signalfd (and its port reservation): not ours.
    for fd in setup.close_fds.into_iter().filter(|fd| *fd >= 0) {
        // These belong to the master's `SignalFd` and reserved `Socket`, whose copies in this
        // process are never used or dropped again (the worker ends in _exit without returning
        // into the master's code): close_inherited's contract.
        sys::close_inherited(fd);
    }
    // 3. Ctrl-C reaches the whole process group; the master alone decides how to stop.
    sys::ignore_signal(Signal::SIGINT)?;
    // 4. Undo the master's blocking, except SIGTERM, which the `signals` thread below waits for.
    //    Threads inherit this mask, so every thread started later has SIGTERM blocked.
    setup.worker_mask.thread_set_mask()?;

    // The master's shared listener, inherited by the fork. The master's `Listener` copy in
    // this process is never used or dropped (we end in _exit), so the worker's `Server` is its
    // one owner and closes it in server_close: adopt_inherited_listener's contract. Adopted as
    // a plain socket, it does not own a Unix socket file: the master removes that.
    let unix = setup.addr.is_unix();
    let listener = setup.listener_fd.map(sys::adopt_inherited_listener).map(|fd| match unix {
        true => Listener::from(UnixListener::from(fd)),
        false => Listener::from(TcpListener::from(fd)),
    });
    // 5. Build the worker's server and serve. The inner strategy is a match, not a type
    //    parameter of Prefork, so that adding one (a thread pool) is one more arm.
    match (setup.event_loop, setup.threads) {
        // One loop, nginx's worker: it accepts from the listener itself (EPOLLEXCLUSIVE on the
        // shared one: an idle worker wakes, one busy in a service is skipped), so the worker
        // has no accept thread to hand connections over from.
        (Some(offload), _) => serve_worker(
            EventLoop::new().accept_on_loops(true).offload(offload),
            setup.builder,
            setup.addr,
            setup.reuse_port,
            listener,
            handler,
        ),
        (None, None) => {
            serve_worker(Sequential, setup.builder, setup.addr, setup.reuse_port, listener, handler)
        }
        // A pool, as gunicorn's gthread worker: m threads, idle keep-alive connections parked
        // instead of pinning a thread. Accepting only when a thread is idle: a worker whose
        // threads are all busy leaves new connections in the shared backlog for a worker that
        // is free, rather than queueing them behind its own slow requests.
        (None, Some(m)) => serve_worker(
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
    addr: Addr,
    reuse_port: bool,
    listener: Option<Listener>,
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
    // Like shutdown_on_signals, but SIGTERM only, and the second one `_exit`s (a forked
    // process must not run `exit`'s handlers, which belong to the master's copied state).
    let mut seen = 0;
    sys::spawn_signal_thread(term, move |_| {
        seen += 1;
        if seen == 1 {
            log::info!("worker {}: SIGTERM: finishing requests in flight", Who::current());
            if let Err(e) = handle.request_shutdown() {
                log::error!("worker: cannot request shutdown: {e}");
            }
        } else {
            let _ = std::io::stderr().flush();
            // Not exit_child: stdout's lock may be held by a thread in the middle of a line,
            // and ending the process from this thread, now, is the point.
            sys::exit_now(1)
        }
    })?;
    log::info!("worker {}: serving ({})", Who::current(), server.concurrency().name());
    server.serve_forever()?;
    server.server_close();
    log::info!("worker {}: stopped, requests finished", Who::current());
    Ok(())
}
