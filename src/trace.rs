//! Who is running and when: the two facts every example prints.
//!
//! *Who* is a process id and an OS thread id. The thread id is the kernel's (`gettid(2)`), the
//! number `ps -L`, `top -H` and `/proc/PID/task/` show, not Rust's opaque `ThreadId`: a learner can
//! hold the log next to `ps` output and match them.
//!
//! *When* is seconds since the server started ([`epoch`]), a monotonic clock. A forked child
//! inherits the parent's copy of the epoch and the monotonic clock is system-wide, so offsets
//! printed by different processes of one server are on the same time line.

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

impl Who {
    /// The calling thread.
    pub fn current() -> Who {
        Who { pid: pid(), tid: tid() }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} tid {}", self.pid, self.tid)
    }
}

/// Formats a duration in seconds with millisecond precision, as the logs print it (`1.002s`).
pub fn secs(d: Duration) -> String {
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
    fn offsets_are_monotonic() {
        let a = now();
        let b = now();
        assert!(b >= a);
        assert_eq!(secs(Duration::from_millis(1500)), "1.500s");
    }
}
