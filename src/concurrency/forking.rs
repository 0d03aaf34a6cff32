//! [`Forking`]: a process per connection. The design, its rules and its trade-off are on
//! the type's docs.

use std::collections::HashSet;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Concurrency, Dispatcher};
use crate::handler::{Connection, RequestHandler};
use crate::sys;

/// Python's default `max_children`.
pub(crate) const DEFAULT_MAX_CHILDREN: usize = 40;

/// One child process per connection (Python's `ForkingMixIn`).
///
/// # Configure this
/// [`new`](Forking::new) (Python's defaults), [`max_children`](Forking::max_children) (40),
/// [`block_on_close`](Forking::block_on_close) (true), and
/// [`reap_in_service_actions`](Forking::reap_in_service_actions) (true; off, to watch zombies).
///
/// # Call this
/// [`active_children`](Forking::active_children) and
/// [`children_forked`](Forking::children_forked), through
/// [`Server::concurrency`](crate::Server::concurrency). Nothing to override: the hooks are
/// [`Concurrency`]'s.
///
/// # What `fork` does
/// `fork(2)` makes a copy of the calling process: same memory (copied lazily, page by page, when
/// either side writes: *copy-on-write*), same open file descriptors, same code position. Both
/// processes return from `fork`; the parent learns the child's pid, the child learns it is the
/// child. The child here handles exactly one connection and exits.
///
/// # The trade-off
/// Processes share nothing by default: a crash, a leak, or memory corruption in one request dies
/// with its child, and a handler cannot see another's data. That isolation costs a `fork` per
/// connection (a few hundred microseconds, growing with the parent's memory map), a process table
/// entry, and the loss of shared state: a cache filled in a child is gone when the child exits.
///
/// *When to pick it:* isolation matters more than speed — handlers that run risky code (native
/// libraries, untrusted input parsers) or leak; modest request rates, since every connection pays
/// a fork. For isolation at high rates, fork once instead: [`Prefork`](super::Prefork).
///
/// # The rules the child follows, and why
/// 1. **Close the listening socket.** The child inherited it. If it kept it open, the port would
///    still accept connections into the backlog after the parent had closed its copy, and
///    nobody would ever `accept` them.
/// 2. **Handle the one connection, flush, and `_exit`.** Never return into the accept loop: the
///    child would become a second server. Never run `exit` or destructors: they belong to the
///    parent's state (its buffered output would be written twice, its temporary files removed).
///    `_exit(2)` ends the process at once. The status is 0, or 1 after an error or a panic;
///    a panic is caught before it can unwind into the copy of the parent's loop.
/// 3. **Ignore Ctrl-C, but not SIGTERM.** A terminal sends SIGINT to every process in the
///    foreground group, children included; the parent alone decides to stop, and waits for its
///    children to finish their requests. SIGTERM sent to a child still ends it. (The child
///    inherits the parent's signal handlers with its memory; the one of
///    [`shutdown_on_signals`](crate::shutdown_on_signals) checks whose process it runs in, and
///    in a child it takes the default action, so no system call is spent resetting it.)
///
/// 4. **Die with the parent.** The child asks the kernel for SIGTERM when the parent dies
///    (`PR_SET_PDEATHSIG`), then checks that the parent did not die *before* that call. A
///    graceful stop never needs it (the parent waits for its children), but a *forced* stop does:
///    a second Ctrl-C makes [`shutdown_on_signals`](crate::shutdown_on_signals) exit the parent at
///    once, and without this its children would run on as orphans, adopted by init, finishing
///    requests for a server that is gone and holding the port's connections open (a
///    `/delay?s=60` would keep a child alive for a minute). The alternatives were worse: killing
///    the process group on the second signal would also kill whatever shares the group (the
///    shell's pipeline, a test harness), and the signal handler does not know the children.
///    The kernel sends the signal when the *thread* that forked exits, which here is the thread
///    running `serve_forever`; it outlives its children because `server_close` waits for (or
///    terminates) them.
///
/// The parent closes *its* copy of the connection at once (or the client would never see the
/// connection close) and records the child's pid.
///
/// # Reaping
/// A child that exits stays in the process table as a *zombie* until its parent collects its
/// exit status with `waitpid`. Python polls rather than handling SIGCHLD, and so does this
/// (reaping inside a signal handler is the bug of gunicorn #3198):
/// * every pass of `serve_forever` (at least every `poll_interval`) reaps with `WNOHANG`, so no
///   zombie lives longer than one poll interval;
/// * at `max_children` (default 40, Python's) the parent blocks in `waitpid` until a child exits
///   before it forks again, so at most `max_children` children exist at any moment;
/// * `server_close` waits for every child (`block_on_close`, default true) or, if that is off,
///   sends each SIGTERM and reaps it: no child outlives the server.
///
/// `waitpid(-1)` collects *any* child of the process, as Python's blocking path does: the server
/// assumes it owns its process's children. Don't run a `Forking` server in a process that also
/// waits for other children of its own.
///
/// # Fork and threads
/// Only the thread that called `fork` exists in the child. A lock held by any other thread at
/// that instant stays locked in the child forever. Keep a forking server's process
/// single-threaded ([`shutdown_on_signals`](crate::shutdown_on_signals) starts no thread: it
/// installs a signal handler) and never fork from a test harness, which runs tests on threads.
/// A second thread costs even when it holds nothing: glibc's `fork` then takes and releases
/// its malloc arenas' locks around the fork, and the child faults in more pages
/// (docs/06-fork-in-numbers.md).
#[derive(Debug)]
pub struct Forking {
    max_children: usize,
    block_on_close: bool,
    reap: bool,
    active: HashSet<Pid>,
    forked: u64,
    /// What every child needs from the parent, found out on the first fork (see `Parent`).
    parent: Option<Parent>,
}

/// What the children need to know about their parent, asked of the kernel once instead of
/// once per connection: the parent's pid does not change, nor does the accept thread's signal
/// mask, which every child inherits and then changes.
#[derive(Debug, Clone, Copy)]
struct Parent {
    /// For rule 4's check that the parent is still there.
    pid: Pid,
    /// The mask of the child (rule 3): the accept thread's, with SIGINT blocked and SIGTERM
    /// not. One `sigprocmask(SIG_SETMASK)` in the child instead of a block and an unblock.
    child_mask: SigSet,
}

impl Parent {
    fn of_this_thread() -> Parent {
        // Cannot fail with a valid `how`; if it did, an empty mask plus SIGINT is still what a
        // child wants.
        let mut child_mask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
        // Ctrl-C is for the parent (rule 3); SIGTERM may be blocked in the parent's thread
        // (by the program), and a child should still die of it.
        child_mask.add(Signal::SIGINT);
        child_mask.remove(Signal::SIGTERM);
        Parent { pid: nix::unistd::getpid(), child_mask }
    }
}

impl Default for Forking {
    fn default() -> Self {
        Forking::new()
    }
}

impl Forking {
    /// Python's defaults: `max_children = 40`, `block_on_close = true`.
    pub fn new() -> Forking {
        Forking {
            max_children: DEFAULT_MAX_CHILDREN,
            block_on_close: true,
            reap: true,
            active: HashSet::new(),
            forked: 0,
            parent: None,
        }
    }

    /// At most `max` children at once (Python's `max_children`, default 40). At the cap, the
    /// parent waits for a child to exit before it forks again. Raised to 1 if 0.
    pub fn max_children(mut self, max: usize) -> Forking {
        self.max_children = max.max(1);
        self
    }

    /// Whether `server_close` waits for children to finish (Python's `block_on_close`, default
    /// `true`). With `false` they are sent SIGTERM and reaped instead.
    pub fn block_on_close(mut self, block: bool) -> Forking {
        self.block_on_close = block;
        self
    }

    /// Whether `service_actions` reaps exited children (default `true`). With `false`, exited
    /// children pile up as zombies (`ps` shows them as `<defunct>`) until `max_children` forces
    /// a blocking wait or the server closes: what a server that forgets to reap looks like
    /// (docs chapter 4, `forking_server --no-reap`). No child outlives the server either way.
    pub fn reap_in_service_actions(mut self, reap: bool) -> Forking {
        self.reap = reap;
        self
    }

    /// Children forked and not yet reaped (running, or exited and waiting to be reaped).
    pub fn active_children(&self) -> usize {
        self.active.len()
    }

    /// Children forked since the server was created.
    pub fn children_forked(&self) -> u64 {
        self.forked
    }

    /// Python's `collect_children`: reaps every child that has exited; with `blocking`, first
    /// waits until fewer than `max_children` remain.
    fn collect_children(&mut self, blocking: bool) {
        if blocking {
            while self.active.len() >= self.max_children {
                if !self.wait_one(None) {
                    break;
                }
            }
        }
        while !self.active.is_empty() {
            if !self.wait_one(Some(WaitPidFlag::WNOHANG)) {
                break;
            }
        }
    }

    /// One `waitpid(-1, flags)`. Returns `false` when there is nothing (more) to collect now.
    fn wait_one(&mut self, flags: Option<WaitPidFlag>) -> bool {
        match waitpid(None, flags) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    self.active.remove(&pid);
                    match status {
                        WaitStatus::Exited(_, 0) => log::debug!("reaped child {pid} (exit 0)"),
                        WaitStatus::Exited(_, code) => log::warn!("reaped child {pid} (exit {code})"),
                        WaitStatus::Signaled(_, sig, _) => log::warn!("reaped child {pid} (killed by {sig})"),
                        other => log::debug!("child {pid}: {other:?}"),
                    }
                }
                true
            }
            // A signal interrupted a blocking wait: try again.
            Err(Errno::EINTR) => true,
            // No children at all: whatever we thought was running was reaped elsewhere (someone
            // else in this process called wait). Forget them rather than block forever.
            Err(Errno::ECHILD) => {
                self.active.clear();
                false
            }
            Err(e) => {
                log::error!("waitpid failed: {e}");
                false
            }
        }
    }
}

impl Concurrency for Forking {
    fn name(&self) -> &'static str {
        "forking"
    }

    fn process_request<H: RequestHandler>(&mut self, conn: Connection, dispatcher: &Dispatcher<H>) {
        // At the cap, wait for a child to exit first: at most max_children exist at any time.
        if self.active.len() >= self.max_children {
            self.collect_children(true);
        }
        // The first fork, and every 1024th: looking costs a directory read of /proc.
        if self.forked.is_multiple_of(1024) {
            warn_if_multithreaded();
        }
        let parent = *self.parent.get_or_insert_with(Parent::of_this_thread);
        // The child's whole life is `child`: fork_child ends it in _exit with its status and
        // never returns into this loop there (rule 2). This process is the server's single
        // accept thread (warned about above if not): fork_child's contract. The closure owns the connection: in the parent it is dropped unrun when
        // fork_child returns, which closes the parent's copy (drop, not shutdown: shutdown would
        // act on the socket itself and cut off the child too).
        let forked = sys::fork_child(move || if child(conn, dispatcher, parent) { 0 } else { 1 });
        match forked {
            Ok(pid) => {
                self.active.insert(pid);
                self.forked += 1;
            }
            // EAGAIN (process limit) or ENOMEM: no child, so the connection is dropped and the
            // client sees it closed. The server goes on.
            Err(e) => log::error!("fork failed, dropping the connection: {e}"),
        }
    }

    fn service_actions(&mut self) {
        if self.reap {
            self.collect_children(false);
        }
    }

    fn server_close(&mut self) {
        if !self.block_on_close {
            for pid in &self.active {
                // ESRCH: it already exited and is waiting to be reaped below; fine.
                let _ = kill(*pid, Signal::SIGTERM);
            }
        }
        while !self.active.is_empty() {
            if !self.wait_one(None) {
                break;
            }
        }
    }
}

/// Logs a warning, once, if this process has more threads than the accept thread at the moment
/// of a fork (see "Fork and threads" above).
///
/// Looking costs a directory read of /proc (several system calls), so the caller asks on the
/// first fork and then on every 1024th, not on every connection.
fn warn_if_multithreaded() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARNED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let threads = sys::thread_count();
    if threads > 1 {
        WARNED.store(true, std::sync::atomic::Ordering::Relaxed);
        log::warn!(
            "forking a process that has {threads} threads: a lock held by another thread stays \
             locked in the child; keep a forking server's process single-threaded"
        );
    }
}

/// The child's whole life: close the listener, handle one connection. `true` if the handler
/// succeeded; [`sys::fork_child`] then flushes and `_exit`s with 0 or 1.
fn child<H: RequestHandler>(conn: Connection, dispatcher: &Dispatcher<H>, parent: Parent) -> bool {
    // Rule 4: no orphans. If the parent died between the fork and the prctl, the request would
    // never come, so give up the connection at once.
    if !sys::die_with_parent(parent.pid).unwrap_or(false) {
        return false;
    }
    // Rule 3, in one system call (see `Parent::child_mask`).
    let _ = parent.child_mask.thread_set_mask();
    // Let the parent's shutdown reach us: see ShutdownHandle::is_stopping.
    conn.server().shutdown_handle().forget_write_end_in_child();
    // Rule 1. The listener is owned by the parent's `Server`, whose copy in this process is
    // never used again: the child ends in _exit without returning to it or running its
    // destructor (close_inherited's contract).
    // A stream server's child needs only its connection: closing its copy of the listener
    // means the listener is gone when the parent closes it, however long children live. A
    // datagram server's child answers on the server's socket, so it keeps it (no fd here).
    if let Some(fd) = dispatcher.listener_fd() {
        sys::close_inherited(fd);
    }
    dispatcher.run(conn)
}
