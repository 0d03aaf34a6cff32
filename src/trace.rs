//! Who is running and when: the two facts every example prints.
//!
//! *Who* is a process id and an OS thread id. The thread id is the kernel's (`gettid(2)`), the
//! number `ps -L`, `top -H` and `/proc/PID/task/` show, not Rust's opaque `ThreadId`: a learner can
//! hold the log next to `ps` output and match them.
//!
//! *When* is seconds since the server started ([`epoch`]), a monotonic clock. A forked child
//! inherits the parent's copy of the epoch and the monotonic clock is system-wide, so offsets
//! printed by different processes of one server are on the same time line.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant this process's first server started (or the first call to this function, if
/// no server has started yet). Offsets in logs and `X-Start` headers count from here.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Seconds from [`epoch`] to `at` (0.0 if `at` is earlier).
pub fn offset(at: Instant) -> f64 {
    at.saturating_duration_since(epoch()).as_secs_f64()
}

/// Seconds from [`epoch`] to now.
pub fn now() -> f64 {
    offset(Instant::now())
}

/// The calling process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// The calling thread's kernel thread id (`gettid(2)`). In a single-threaded process it equals
/// the pid; in a thread pool each worker has its own.
pub fn tid() -> u32 {
    // gettid never fails (there is always a calling thread); the kernel's pid_t is positive.
    nix::unistd::gettid().as_raw() as u32
}

/// A process id and a thread id, captured together; `Display`s as `pid 4242 tid 4250`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Who {
    /// Process id.
    pub pid: u32,
    /// Kernel thread id.
    pub tid: u32,
}

thread_local! {
    /// This thread's [`Who`], once asked for. Neither number changes during a thread's life,
    /// except across `fork(2)`: the child's one thread has a new pid and a new tid but a copy
    /// of the forking thread's memory, this cell included. See [`forget_after_fork`].
    static CACHED: Cell<Option<Who>> = const { Cell::new(None) };
}

impl Who {
    /// The calling thread. Two system calls (`getpid`, `gettid`) every time: the always-true
    /// answer, even in a process forked by code outside this crate.
    pub fn current() -> Who {
        Who { pid: pid(), tid: tid() }
    }

    /// The calling thread, asked of the kernel once per thread and then remembered: the HTTP
    /// layer wants it for every response (`X-Pid`, `X-Tid`, the log line, and the "am I the
    /// server's own process?" test of [`is_stopping`](crate::ShutdownHandle::is_stopping)), and
    /// two system calls per request were more than the `recv` and `send` that do the work.
    ///
    /// Correct in every thread of this crate's servers: the crate's own fork paths (the
    /// [`Forking`](crate::Forking) child and the [`Prefork`](crate::Prefork) worker) call
    /// [`forget_after_fork`] first thing in the child.
    pub(crate) fn cached() -> Who {
        CACHED.with(|cell| {
            cell.get().unwrap_or_else(|| {
                let who = Who::current();
                cell.set(Some(who));
                who
            })
        })
    }
}

/// Forgets the remembered [`Who::cached`] of the calling thread. Call it in a freshly forked
/// child, whose one thread inherited the parent's value; other threads do not exist there.
pub(crate) fn forget_after_fork() {
    CACHED.with(|cell| cell.set(None));
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} tid {}", self.pid, self.tid)
    }
}

/// Formats a duration in seconds with millisecond precision, as the logs print it (`1.002s`).
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_thread_tid_is_a_real_kernel_id() {
        let who = Who::current();
        assert!(who.pid > 0 && who.tid > 0);
        // The kernel lists every thread of a process under /proc/PID/task/TID.
        assert!(std::path::Path::new(&format!("/proc/{}/task/{}", who.pid, who.tid)).exists());
    }

    #[test]
    fn threads_have_distinct_tids_and_one_pid() {
        let here = Who::current();
        let there = std::thread::spawn(Who::current).join().unwrap();
        assert_eq!(here.pid, there.pid);
        assert_ne!(here.tid, there.tid);
    }

    #[test]
    fn cached_who_is_per_thread_and_right() {
        assert_eq!(Who::cached(), Who::current());
        assert_eq!(Who::cached(), Who::current(), "the remembered value");
        let there = std::thread::spawn(|| {
            let first = Who::cached();
            (first, Who::cached(), Who::current())
        })
        .join()
        .unwrap();
        assert_eq!(there.0, there.2, "a new thread asks the kernel, not its parent's cache");
        assert_eq!(there.1, there.2);
        assert_ne!(there.0.tid, Who::cached().tid);
        // What a forked child does first; here it must simply ask again and agree.
        forget_after_fork();
        assert_eq!(Who::cached(), Who::current());
    }

    #[test]
    fn offsets_are_monotonic() {
        let a = now();
        let b = now();
        assert!(b >= a);
        assert_eq!(secs(Duration::from_millis(1500)), "1.500s");
    }
}
