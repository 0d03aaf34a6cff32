//! OS plumbing, written once: waking a thread, waiting for one descriptor, the shutdown signal
//! handler and the signal-receiving thread, and what a forked child does first and last.
//!
//! Everything here is a thin layer over one or two system calls, kept apart from the server
//! logic for two reasons. Each of these was written two or three times (the accept loop, the
//! shutdown handle, the pre-forking master and its workers, the forking strategy), and the
//! copies had begun to differ in small ways (one rounded a poll timeout up, one did not need
//! to). And this is the crate's one file with `unsafe` in it: `fork`, `_exit`, `close` of an
//! inherited descriptor, adopting a raw descriptor, changing a signal's disposition, and the one
//! signal handler. Every
//! block carries its `SAFETY:` argument (`clippy::undocumented_unsafe_blocks` is denied crate
//! wide), and each function that wraps one states the contract its callers keep.
//!
//! Linux only, as the crate is: `eventfd(2)`, `prctl(PR_SET_PDEATHSIG)`, `/proc/self/task`.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};

/// Wakes a thread that sleeps in `poll`/`epoll_wait` on [`as_fd`](AsFd::as_fd): an `eventfd(2)`.
///
/// Why an eventfd and not the classic self-pipe: one descriptor instead of two, and a counter
/// instead of a byte stream, so any number of [`wake`](Waker::wake)s before the sleeper looks
/// are one 8-byte `read` to [`drain`](Waker::drain), and a wake can never block because a pipe
/// filled up. `EFD_NONBLOCK` so that neither side ever blocks on it; `EFD_CLOEXEC` so that a
/// program a handler `exec`s does not inherit it.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: EventFd,
}

impl Waker {
    /// A new waker, not yet woken.
    pub(crate) fn new() -> io::Result<Waker> {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Waker { fd })
    }

    /// Makes the descriptor readable until the next [`drain`](Waker::drain). Never blocks and
    /// never fails in a way the caller could act on: `EAGAIN` means the counter is at its
    /// maximum, so the sleeper is woken already.
    pub(crate) fn wake(&self) {
        let _ = self.fd.write(1);
    }

    /// Makes the descriptor not readable again, after a wake-up, so that the next wait blocks.
    /// One read empties the counter however many wakes it holds; `EAGAIN` (nothing to drain)
    /// is fine.
    pub(crate) fn drain(&self) {
        let _ = self.fd.read();
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A `poll(2)` timeout for "at most `timeout`" (`None`: forever), rounded *up* to whole
/// milliseconds: rounding down would turn the last 0.4 ms before a deadline into a 0 ms poll
/// that returns at once, and the caller would spin until the deadline passed. Longer than
/// `i32::MAX` ms (24 days) is capped there.
pub(crate) fn poll_timeout(timeout: Option<Duration>) -> PollTimeout {
    match timeout {
        Some(t) => PollTimeout::try_from(ceil_millis(t)).unwrap_or(PollTimeout::MAX),
        None => PollTimeout::NONE,
    }
}

/// `d` in whole milliseconds, rounded *up* and capped at `i32::MAX`: the unit `poll(2)` and
/// `epoll_wait(2)` take. Rounding down would wake a waiter up to 1 ms before its deadline, to
/// find it not yet due and wait again with 0 ms: a busy spin instead of one late-by-<1 ms wake.
pub(crate) fn ceil_millis(d: Duration) -> i32 {
    d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
}

/// One `poll(2)` on one descriptor: what happened to it (`revents`) within `timeout`
/// (`None`: wait for ever; zero: just look). Empty on timeout and when a signal interrupted
/// the wait (`EINTR`): callers loop on their own conditions, so a spurious empty answer only
/// costs a look.
pub(crate) fn poll_one(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    timeout: Option<Duration>,
) -> io::Result<PollFlags> {
    let mut fds = [PollFd::new(fd, events)];
    match poll(&mut fds, poll_timeout(timeout)) {
        Ok(_) => Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
        Err(Errno::EINTR) => Ok(PollFlags::empty()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `fd` is readable (data, EOF, a hang-up or an error to collect) within `timeout`.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    poll_one(fd, PollFlags::POLLIN, timeout).map(|r| !r.is_empty())
}

/// The number of threads of this process: one directory per thread under `/proc/self/task`.
/// A directory read is several system calls, so callers ask rarely. If `/proc` cannot be read,
/// 1 (the caller's own thread, the one fact known for sure).
pub(crate) fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(1)
}

/// Starts a thread named `signals` that blocks in `sigwait(2)` on `set` and calls `on_signal`
/// with each signal received, as an ordinary function call where locks, allocation and logging
/// are all allowed (none is in a signal handler).
///
/// The caller must have *blocked* `set` in its own thread first, before starting any other
/// thread: a signal is delivered to some thread that does not block it, and threads inherit
/// the mask of their creator. The new thread inherits it too, which is what `sigwait` needs.
pub(crate) fn spawn_signal_thread(
    set: SigSet,
    mut on_signal: impl FnMut(Signal) + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            // EINTR (a signal outside `set`, say SIGSTOP/SIGCONT from a debugger): wait again.
            if let Ok(signal) = set.wait() {
                on_signal(signal);
            }
        }
    })?;
    Ok(())
}

/// What the shutdown signal handler ([`on_shutdown_signal`]) shares with ordinary code. Only
/// atomics: a handler interrupts a thread at any instruction, possibly one holding a lock, so
/// the only shared memory it may touch is memory that is never locked.
///
/// The process that installed the handler: a forked child inherits the handler, but the
/// signals it receives are its own, not a request to stop its parent's server.
static SIGNAL_OWNER: AtomicI32 = AtomicI32::new(0);
/// The eventfd the handler writes to, to wake the thread that polls it (-1: none yet).
static SIGNAL_WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// How many shutdown signals arrived: the first asks for a graceful stop, the second exits.
static SIGNALS_CAUGHT: AtomicU32 = AtomicU32::new(0);
/// The number of the first signal, until ordinary code takes it (0: nothing to take).
static SIGNAL_PENDING: AtomicI32 = AtomicI32::new(0);

/// Installs [`on_shutdown_signal`] for `signals`: the first one arriving is recorded for
/// [`take_shutdown_signal`] and wakes `wake_fd` (an eventfd, written 1); a second one ends the
/// process at once with `_exit(128 + signal number)`, the status a shell gives a process
/// killed by that signal.
///
/// This is the design of Python's `signal.set_wakeup_fd`: the handler does the least that
/// is safe (set a flag, write to a descriptor) and the real work, logging and stopping the
/// server, happens later in ordinary code, in the thread that `poll`s the descriptor. No
/// signal is blocked and no thread is started, so a forking server's process stays
/// single-threaded: with a second thread glibc's `fork` must take its malloc arenas' locks
/// around the fork, and the child faults in more pages (docs/06-fork-in-numbers.md).
///
/// `SA_RESTART`: a system call the signal interrupts in *another* thread (a request thread's
/// `read`, `waitpid`, a condition variable's futex) restarts instead of failing with `EINTR`;
/// nothing needs interrupting, since the eventfd is what wakes the poller. `poll` and
/// `epoll_wait` are never restarted, whatever the flag: the accept loop sees `EINTR`, looks at
/// its flag, and finds the signal.
///
/// `wake_fd` is `'static` because the handler may write to it at any moment for the rest of
/// the process's life: closed, its number could be reused by a connection, which would then
/// receive the handler's 8 bytes.
pub(crate) fn catch_shutdown_signals(signals: &[Signal], wake_fd: BorrowedFd<'static>) -> io::Result<()> {
    SIGNAL_OWNER.store(nix::unistd::getpid().as_raw(), Ordering::SeqCst);
    SIGNAL_WAKE_FD.store(wake_fd.as_raw_fd(), Ordering::SeqCst);
    SIGNALS_CAUGHT.store(0, Ordering::SeqCst);
    SIGNAL_PENDING.store(0, Ordering::SeqCst);
    // While one of the handlers runs, the others wait (sa_mask), so two signals arriving at
    // once on one thread are counted one after the other, never one inside the other.
    let mut mask = SigSet::empty();
    for &s in signals {
        mask.add(s);
    }
    let action = SigAction::new(SigHandler::Handler(on_shutdown_signal), SaFlags::SA_RESTART, mask);
    for &s in signals {
        // SAFETY: the handler calls only async-signal-safe functions (signal-safety(7):
        // getpid, write, signal, raise, _exit) and touches only lock-free atomics; it saves and
        // restores errno, which it would otherwise clobber under the interrupted code.
        unsafe { nix::sys::signal::sigaction(s, &action) }?;
    }
    Ok(())
}

/// The first shutdown signal that [`on_shutdown_signal`] caught, once: `None` afterwards, and
/// when none arrived.
pub(crate) fn take_shutdown_signal() -> Option<Signal> {
    // Look before writing: the accept loop asks on every pass and a forked child on every
    // request, and a write (the swap) to a page shared with a child since the last fork is a
    // copy-on-write fault, one per connection in the parent and one in each child.
    if SIGNAL_PENDING.load(Ordering::SeqCst) == 0 {
        return None;
    }
    match SIGNAL_PENDING.swap(0, Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// The signal handler of [`catch_shutdown_signals`]. Everything in it is async-signal-safe:
/// it can interrupt any code, including `malloc` or a `log` call holding their locks, so it
/// must not allocate, lock, log or unwind.
extern "C" fn on_shutdown_signal(signal: libc::c_int) {
    // write(2) and getpid(2) may set errno, and the interrupted code may be about to read it.
    let saved_errno = Errno::last_raw();
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    if unsafe { libc::getpid() } != SIGNAL_OWNER.load(Ordering::SeqCst) {
        // A forked child (the fork copied the handler, and the child may not have looked yet):
        // behave as if it had no handler. Put back the default action and send the signal again;
        // it stays blocked while this handler runs and kills the child when it returns, as a
        // SIGTERM to a child (rule 3 of `Forking`, `PR_SET_PDEATHSIG`) must.
        // SAFETY: signal(2) and raise(3) are async-signal-safe; SIG_DFL runs no code.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        Errno::set_raw(saved_errno);
        return;
    }
    if SIGNALS_CAUGHT.fetch_add(1, Ordering::SeqCst) > 0 {
        // The second signal: now. _exit, not exit: exit runs atexit handlers and flushes stdio,
        // which take locks the interrupted code may hold. (A partial line in stdout's buffer is
        // lost; Rust's stdout is line-buffered, so that is at most one unfinished line.)
        exit_now(128 + signal);
    }
    SIGNAL_PENDING.store(signal, Ordering::SeqCst);
    let one: u64 = 1;
    // SAFETY: write(2) is async-signal-safe; the buffer is 8 valid bytes on this stack; the
    // descriptor stays open for the rest of the process (catch_shutdown_signals' contract).
    // EAGAIN (the counter is full) means the poller is woken already.
    unsafe {
        libc::write(SIGNAL_WAKE_FD.load(Ordering::SeqCst), (&raw const one).cast(), 8);
    }
    Errno::set_raw(saved_errno);
}

/// Puts back the default action of `signal` (`SIG_DFL`).
pub(crate) fn default_signal(signal: Signal) -> io::Result<()> {
    // SAFETY: SIG_DFL installs no handler code, so no async-signal-safety question arises.
    unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    Ok(())
}

/// Ignores `signal` (`SIG_IGN`) in the whole process.
pub(crate) fn ignore_signal(signal: Signal) -> io::Result<()> {
    // SAFETY: SIG_IGN runs no handler code, so no async-signal-safety question arises.
    unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) }?;
    Ok(())
}

/// Forks. In the parent, returns the child's pid. In the child, runs `child` and ends the
/// process with the status it returns (1 if it panics): `child` never returns into the caller.
///
/// Before the fork, stdout is flushed: anything still in its buffer would be copied into the
/// child and written twice (stderr has no buffer in Rust). Before the *first* fork, the
/// process-wide caches a child would otherwise fill again each time are filled
/// ([`warm_caches_before_first_fork`]). In the child, first thing, the remembered pid and tid
/// ([`crate::trace`]) are forgotten, since they are the parent's; last thing, stdout is flushed
/// again and the process `_exit`s ([`exit_child`]).
///
/// The caller's contract (why this is not `unsafe fn`): it is `pub(crate)`, and both callers
/// (the forking strategy, the pre-forking master) call it from a process whose other threads,
/// if any, hold no lock the child needs (the forking strategy warns when there are any; the
/// master refuses to start), and their `child` closures use only what survives a fork.
pub(crate) fn fork_child(child: impl FnOnce() -> i32) -> io::Result<Pid> {
    warm_caches_before_first_fork();
    let _ = io::stdout().flush();
    // SAFETY: after fork the child may rely only on what survives it: its one thread, a copy
    // of memory, and locks in the state they were in. By the contract above no lock the child
    // takes can be held by a thread that vanished, and the child never returns from here into
    // the caller's loop or its destructors: it ends in `exit_child`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            crate::trace::forget_after_fork();
            // A panic must not unwind out of here into the copy of the parent's loop.
            let status = catch_unwind(AssertUnwindSafe(child)).unwrap_or(1);
            exit_child(status)
        }
    }
}

/// Fills, once per process, the lazily filled caches that every forked child would otherwise
/// fill again for itself, since what a child fills dies with it.
///
/// One so far, and a big one: the CPU feature cache of std (`is_x86_feature_detected!`),
/// which httparse consults to pick its SIMD parser. Filling it runs `cpuid` several times, and
/// in a virtual machine every `cpuid` traps to the hypervisor: it was the largest item of a
/// forking server's CPU per connection after `fork` and the page faults (docs/benchmarks.md,
/// "A connection per request"). Asking for one feature fills the whole cache; `avx2` because
/// a baseline x86-64 build cannot answer it at compile time (for `sse2` the macro would not
/// look). After the first call this is one load of an atomic, which writes nothing, so it
/// costs the parent no copy-on-write fault.
///
/// And httparse's own copy of the answer (its `RUNTIME_FEATURE`, which SIMD matcher to use),
/// stored on its first parse: a parent that never parses left it empty, so every child stored
/// it again, a write to a page shared with the parent, one copy-on-write fault per connection
/// (`perf record -e page-faults -d` names the static). One parse of a tiny request fills it.
fn warm_caches_before_first_fork() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        #[cfg(target_arch = "x86_64")]
        let _ = std::arch::is_x86_feature_detected!("avx2");
        let mut headers = [httparse::EMPTY_HEADER; 1];
        let _ = httparse::Request::new(&mut headers).parse(b"GET / HTTP/1.1\r\n\r\n");
    });
}

/// The first step of every forked child: ask the kernel for SIGTERM when the parent dies
/// (`PR_SET_PDEATHSIG`), then check that `parent` did not die *before* that call (the child was
/// then adopted and `getppid` names someone else). `Ok(false)`: the parent is gone, give up.
///
/// Without it, a parent that exits at once (a second Ctrl-C) would leave its children running
/// as orphans, adopted by init, serving for a server that is gone. The kernel sends the signal
/// when the *thread* that forked exits; the callers fork from the thread that lives longest.
pub(crate) fn die_with_parent(parent: Pid) -> io::Result<bool> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
    Ok(nix::unistd::getppid() == parent)
}

/// Closes a descriptor a forked child inherited and has no use for (the listener, the master's
/// signalfd).
///
/// Contract: only in a child started by [`fork_child`], for a descriptor whose owner in the
/// parent's copied state is never used or dropped in the child (the child ends in `_exit`
/// without returning to it), so nothing can use or close the number again.
pub(crate) fn close_inherited(fd: RawFd) {
    // SAFETY: by the contract above this is the one close of `fd` in this process, and no
    // owner of it is used afterwards. EBADF or EINTR would leave nothing to do.
    unsafe {
        libc::close(fd);
    }
}

/// Takes ownership of a listening socket inherited through `fork` as a raw descriptor.
///
/// Contract: only in a child started by [`fork_child`], for the descriptor of a listener owned
/// by the parent's copied state that is never used or dropped in the child, so the returned
/// descriptor is its one owner.
pub(crate) fn adopt_inherited_listener(fd: RawFd) -> std::os::fd::OwnedFd {
    // SAFETY: by the contract above `fd` is an open listening socket that nothing else in this
    // process owns or will close.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Receives one datagram into `buf` with `recvfrom(MSG_TRUNC)`: the datagram's real length
/// (Linux returns it with `MSG_TRUNC`, also when only `buf.len()` bytes were stored) and its
/// sender. socket2 does the call; a Unix sender without a name comes back as an address of
/// length 0, which socket2 represents faithfully (nix's `recvmsg` asserts on it).
pub(crate) fn recv_datagram(
    socket: &socket2::Socket,
    buf: &mut [u8],
) -> io::Result<(usize, socket2::SockAddr)> {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and viewing initialised bytes as maybe
    // uninitialised is always valid to *read*; the one hazard, writing uninitialised bytes
    // through the view, cannot happen: recvfrom(2) only stores received bytes, and the view
    // does not outlive this call.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    socket.recv_from_with_flags(uninit, libc::MSG_TRUNC)
}

/// `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: a connection that is non-blocking from the start,
/// for a reactor, which would otherwise make a second system call per connection to set
/// `O_NONBLOCK` (socket2's `accept` passes only `SOCK_CLOEXEC`). The peer's address comes back
/// as `accept`'s does.
pub(crate) fn accept_nonblocking(
    listener: &socket2::Socket,
) -> io::Result<(socket2::Socket, socket2::SockAddr)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let fd = listener.as_raw_fd();
    // SAFETY: `try_init` passes a zeroed `sockaddr_storage` and its size, which is what
    // accept4(2) takes for the peer's address (it stores at most that many bytes and writes the
    // real length back). The descriptor accept4 returns on success is new and ours alone, so
    // `OwnedFd` may own it; on failure nothing is owned.
    let (owned, peer) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let fd = libc::accept4(fd, storage.cast(), len, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
            if fd < 0 { Err(io::Error::last_os_error()) } else { Ok(OwnedFd::from_raw_fd(fd)) }
        })
    }?;
    Ok((socket2::Socket::from(owned), peer))
}

/// Ends a forked child: flushes stdout (the child's own output, which `_exit` would otherwise
/// drop; stderr has no buffer), then `_exit(status)`.
pub(crate) fn exit_child(status: i32) -> ! {
    let _ = io::stdout().flush();
    exit_now(status)
}

/// `_exit(status)` at once, without flushing: from a thread that must not wait for a lock
/// another thread may hold (stdout's, say).
pub(crate) fn exit_now(status: i32) -> ! {
    // SAFETY: _exit ends the process at once, without atexit handlers or destructors, which in
    // a forked child belong to the parent's copy of the program state. It has no preconditions.
    unsafe { libc::_exit(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeouts_round_up_to_whole_milliseconds() {
        let ms = |d: Duration| i32::from(poll_timeout(Some(d)));
        assert_eq!(ms(Duration::ZERO), 0);
        assert_eq!(ms(Duration::from_micros(400)), 1, "a remainder must not become a busy 0 ms poll");
        assert_eq!(ms(Duration::from_millis(500)), 500);
        assert_eq!(ms(Duration::from_micros(500_001)), 501);
        assert_eq!(ms(Duration::from_secs(u64::MAX)), i32::MAX);
        assert_eq!(poll_timeout(None), PollTimeout::NONE);
    }

    #[test]
    fn a_waker_wakes_until_drained() {
        let w = Waker::new().unwrap();
        assert!(!wait_readable(w.as_fd(), Some(Duration::ZERO)).unwrap());
        w.wake();
        w.wake();
        assert!(wait_readable(w.as_fd(), Some(Duration::ZERO)).unwrap());
        w.drain();
        assert!(
            !wait_readable(w.as_fd(), Some(Duration::ZERO)).unwrap(),
            "one drain empties any number of wakes"
        );
        w.drain();
    }

    #[test]
    fn a_waker_wakes_a_thread_that_sleeps_on_it() {
        let w = std::sync::Arc::new(Waker::new().unwrap());
        let w2 = std::sync::Arc::clone(&w);
        // Ten seconds is "never" here: a wake that does not arrive fails the test, not hangs it.
        let sleeper =
            std::thread::spawn(move || wait_readable(w2.as_fd(), Some(Duration::from_secs(10))).unwrap());
        w.wake();
        assert!(sleeper.join().unwrap());
    }

    #[test]
    fn a_second_thread_is_counted() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        // The spawned thread exists until it is joined, so the count is higher while it waits.
        assert!(thread_count() >= 2);
        drop(tx);
        let _ = t.join();
    }
}
